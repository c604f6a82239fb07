"""Migrations upgrade a populated database, on SQLite and PostgreSQL, keeping its rows."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from accord.platform.db import make_engine
from accord.platform.schema import include_object, upgrade


def test_upgrading_a_populated_database_keeps_and_defaults_its_rows(tmp_path, request) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import fresh_postgres_database

    for backend in ("sqlite", "postgres"):
        if backend == "sqlite":
            url, drop = f"sqlite:///{tmp_path / 'm.db'}", (lambda: None)
        else:
            url, drop = fresh_postgres_database()
        try:
            upgrade(url, "0002")
            engine = make_engine(url)
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO partner (id, name, tier, regions, email_domains, calendar, is_direct_sales, active)"
                        " VALUES ('p1', 'P One', 'gold', '[]', '[]', 'US-NY', false, true)"
                    )
                )
                conn.execute(
                    text(
                        "INSERT INTO dispute (number, category, claimant_id, respondent_ids, party_key,"
                        " contested_objects, summary, facts, desired_remedy, amount_at_stake, currency,"
                        " occurred_on, stage, playbook_version, filed_by, filed_at, updated_at)"
                        " VALUES ('DSP-2026-000001', 'pricing', 'p1', '[]', 'p1', '[]', 'old', 'old facts',"
                        " 'x', 10, 'USD', '2026-11-01', 'closed', '2026.1', 'a@b.c',"
                        " '2026-11-02 10:00:00+00', '2026-11-02 10:00:00+00')"
                    )
                )
                conn.execute(
                    text(
                        "INSERT INTO precedent (dispute_number, category, playbook_version, clauses, facts,"
                        " contested_objects, outcome, remedies, rationale, timeline, claimant_tier,"
                        " claimant_region, amount_at_stake, decided_at) VALUES ('DSP-2026-000001',"
                        " 'pricing', '2026.1', '[]', 'old facts', '[]', 'settled', '[]', 'r', '[]',"
                        " 'gold', 'NA', 10, '2026-11-03 10:00:00+00')"
                    )
                )
            engine.dispose()
            upgrade(url)
            engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
            with engine.connect() as conn:
                row = conn.execute(
                    text("SELECT facts, parties, votes_summary, facet_values FROM precedent")
                ).one()
                parties = conn.execute(
                    text("SELECT dispute_number, partner_id, side FROM dispute_party")
                ).all()
            engine.dispose()
            assert [tuple(p) for p in parties] == [("DSP-2026-000001", "p1", "claimant")]
            assert row[0] == "old facts"
            assert row[1] in ([], "[]") and row[2] in ({}, "{}")
            # Facets backfilled (0007-0009): the precedent is found by them.
            assert set(row[3].split("\n")) >= {"category=pricing", "outcome=settled", "tier=gold"}
        finally:
            drop()


def test_the_migrations_build_exactly_the_models_tables(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A model change without its migration (or the reverse) fails here, not in production."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import models.tables  # noqa: F401

    url = f"sqlite:///{tmp_path / 'c.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": include_object}
        )
        differences = compare_metadata(context, SQLModel.metadata)
    engine.dispose()
    assert differences == []


def test_functions_stored_before_imports_normalised_them_are_lower_case(database_url: str) -> None:
    from alembic import command
    from sqlmodel import Session

    from accord.platform.schema import alembic_config
    from models.enums import Role
    from models.tables import Person

    command.downgrade(alembic_config(database_url), "0014")
    engine = make_engine(database_url)
    with Session(engine) as session:
        session.add(
            Person(
                id="fin.old",
                name="Old Finance",
                email="fin.old@vendor.example",
                role=Role.BOARD,
                organisation="vendor",
                function=" Finance ",
                calendar="US-NY",
            )
        )
        session.commit()
    upgrade(database_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT function FROM person WHERE id = 'fin.old'")).scalar()
    assert stored == "finance"
    engine.dispose()


def test_entries_written_before_steps_get_step_equal_to_seq_and_stay_guarded(
    database_url: str,
) -> None:
    from alembic import command
    from sqlalchemy.exc import DBAPIError

    from accord.platform.schema import alembic_config

    command.downgrade(alembic_config(database_url), "0015")
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO partner (id, name, tier, regions, email_domains, calendar,"
                " is_direct_sales, active) VALUES ('p1', 'P One', 'gold', '[]', '[]', 'US-NY',"
                " false, true)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO dispute (number, category, claimant_id, respondent_ids, party_key,"
                " contested_objects, summary, facts, desired_remedy, amount_at_stake, currency,"
                " occurred_on, stage, playbook_version, filed_by, filed_at, updated_at)"
                " VALUES ('DSP-2026-000001', 'pricing', 'p1', '[]', 'p1', '[]', 's', 'f', 'x', 10,"
                " 'USD', '2026-11-01', 'triage', '2026.1', 'a@b.c', '2026-11-02 10:00:00+00',"
                " '2026-11-02 10:00:00+00')"
            )
        )
        for seq in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO dispute_event (dispute_number, seq, at, actor_id, actor_role,"
                    " action, content, prev_hash, hash) VALUES ('DSP-2026-000001', :s,"
                    " '2026-11-02 10:00:00+00', 'system', 'system', 'filed', '{}', 'p', 'h')"
                ),
                {"s": seq},
            )
    engine.dispose()
    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT seq, step FROM dispute_event ORDER BY seq")).all()
    assert [tuple(r) for r in rows] == [(1, 1), (2, 2)]
    # The guard was lifted for the backfill alone.
    for statement in ("UPDATE dispute_event SET step = 7", "DELETE FROM dispute_event"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    engine.dispose()


def test_the_dispute_index_is_rebuilt_in_filing_order_and_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """0028 indexes the disputes already there by filing time (two in one millisecond each get
    their own rowid); a downgrade gives back 0007's index, every dispute in it."""
    from alembic import command

    from accord.platform.schema import alembic_config

    url = f"sqlite:///{tmp_path / 'd.db'}"
    upgrade(url, "0025")
    engine = make_engine(url)
    filed = {
        "DSP-2026-000003": "2026-11-03 10:00:00.000300",
        "DSP-2026-000001": "2026-11-01 10:00:00",
        "DSP-2026-000002": "2026-11-03 10:00:00.000100",  # the same millisecond as 000003
    }
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO partner (id, name, tier, regions, email_domains, calendar,"
                " is_direct_sales, active) VALUES ('p1', 'P One', 'gold', '[]', '[]', 'US-NY', 0, 1)"
            )
        )
        for number, at in filed.items():
            conn.execute(
                text(
                    "INSERT INTO dispute (number, category, claimant_id, respondent_ids, party_key,"
                    " contested_objects, summary, facts, desired_remedy, amount_at_stake, currency,"
                    " occurred_on, stage, playbook_version, filed_by, filed_at, updated_at)"
                    " VALUES (:n, 'pricing', 'p1', '[]', 'p1', '[]', 'a kiwi claim', 'kiwi facts',"
                    " 'x', 10, 'USD', '2026-11-01', 'closed', '2026.1', 'a@b.c', :at, :at)"
                ),
                {"n": number, "at": at},
            )
    engine.dispose()
    upgrade(url, "0028")
    engine = make_engine(url)
    with engine.connect() as conn:
        keyed = conn.execute(
            text(
                "SELECT k.number FROM dispute_fts f JOIN dispute_fts_key k ON k.fts_rowid = f.rowid"
                " WHERE dispute_fts MATCH 'kiwi' ORDER BY f.rowid DESC"
            )
        ).scalars()
        assert list(keyed) == ["DSP-2026-000003", "DSP-2026-000002", "DSP-2026-000001"]
    engine.dispose()
    command.downgrade(alembic_config(url), "0025")
    engine = make_engine(url)
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT number FROM dispute_fts WHERE dispute_fts MATCH 'kiwi' ORDER BY number")
        ).scalars()
        assert list(found) == sorted(filed)
        tables = conn.execute(text("SELECT name FROM sqlite_master WHERE name = 'dispute_fts_key'"))
        assert tables.all() == []
    engine.dispose()


def test_postgres_searches_disputes_in_their_own_table_and_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """0028 on PostgreSQL: dispute_search holds the disputes already there and follows new and
    changed ones; a downgrade gives back the GIN index on the dispute table."""
    from alembic import command

    from accord.platform.schema import alembic_config
    from tests.conftest import fresh_postgres_database

    url, drop = fresh_postgres_database()
    insert = text(
        "INSERT INTO dispute (number, category, claimant_id, respondent_ids, party_key,"
        " contested_objects, summary, facts, desired_remedy, amount_at_stake, currency,"
        " occurred_on, stage, playbook_version, filed_by, filed_at, updated_at)"
        " VALUES (:n, 'pricing', 'p1', '[]', 'p1', '[]', 'a kiwi claim', :facts,"
        " 'x', 10, 'USD', '2026-11-01', 'closed', '2026.1', 'a@b.c', :at, :at)"
    )
    try:
        upgrade(url, "0025")
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO partner (id, name, tier, regions, email_domains, calendar,"
                    " is_direct_sales, active)"
                    " VALUES ('p1', 'P One', 'gold', '[]', '[]', 'US-NY', false, true)"
                )
            )
            conn.execute(insert, {"n": "DSP-2026-000001", "facts": "old", "at": "2026-11-01"})
        engine.dispose()
        upgrade(url, "0028")
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(insert, {"n": "DSP-2026-000002", "facts": "new", "at": "2026-11-02"})
            conn.execute(
                text("UPDATE dispute SET facts = 'mango' WHERE number = 'DSP-2026-000001'")
            )
        with engine.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT number FROM dispute_search"
                    " WHERE tsv @@ websearch_to_tsquery('english', :q) ORDER BY number"
                ),
                {"q": "kiwi"},
            ).scalars()
            assert list(found) == ["DSP-2026-000001", "DSP-2026-000002"]
            mango = conn.execute(
                text("SELECT number FROM dispute_search WHERE tsv @@ to_tsquery('mango')")
            ).scalars()
            assert list(mango) == ["DSP-2026-000001"]
        engine.dispose()
        command.downgrade(alembic_config(url), "0025")
        engine = make_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT to_regclass('dispute_search')")).scalar() is None
            index = conn.execute(text("SELECT to_regclass('ix_dispute_search_tsv')")).scalar()
            assert index is not None
        engine.dispose()
    finally:
        drop()


def test_postgres_dispute_search_mirrors_each_disputes_parties_and_back() -> None:
    """0032 on PostgreSQL: dispute_search.parties holds exactly the partners of dispute_party,
    for the disputes already there and as party rows come, change and go, two writers at once
    included; a downgrade drops it."""
    import threading

    from alembic import command

    from accord.platform.schema import alembic_config
    from tests.conftest import fresh_postgres_database

    url, drop = fresh_postgres_database()
    dispute = text(
        "INSERT INTO dispute (number, category, claimant_id, respondent_ids, party_key,"
        " contested_objects, summary, facts, desired_remedy, amount_at_stake, currency,"
        " occurred_on, stage, playbook_version, filed_by, filed_at, updated_at)"
        " VALUES (:n, 'pricing', 'p1', '[]', 'p1', '[]', 'a claim', 'facts',"
        " 'x', 10, 'USD', '2026-11-01', 'closed', '2026.1', 'a@b.c', :at, :at)"
    )
    party = text(
        "INSERT INTO dispute_party (dispute_number, partner_id, side) VALUES (:n, :p, 'x')"
    )
    mirrored = text("SELECT number, parties FROM dispute_search ORDER BY number")
    try:
        upgrade(url, "0031")
        engine = make_engine(url)
        with engine.begin() as conn:
            for pid in ("p1", "p2", "p3", "p4"):
                conn.execute(
                    text(
                        "INSERT INTO partner (id, name, tier, regions, email_domains, calendar,"
                        " is_direct_sales, active)"
                        " VALUES (:p, :p, 'gold', '[]', '[]', 'US-NY', false, true)"
                    ),
                    {"p": pid},
                )
            conn.execute(dispute, {"n": "DSP-2026-000001", "at": "2026-11-01"})
            conn.execute(party, {"n": "DSP-2026-000001", "p": "p1"})
            conn.execute(party, {"n": "DSP-2026-000001", "p": "p2"})
            conn.execute(dispute, {"n": "DSP-2026-000002", "at": "2026-11-02"})
        engine.dispose()
        upgrade(url, "0032")
        engine = make_engine(url)
        with engine.connect() as conn:
            rows = [(n, sorted(p)) for n, p in conn.execute(mirrored)]
        assert rows == [("DSP-2026-000001", ["p1", "p2"]), ("DSP-2026-000002", [])]
        with engine.begin() as conn:
            conn.execute(dispute, {"n": "DSP-2026-000003", "at": "2026-11-03"})
            conn.execute(party, {"n": "DSP-2026-000003", "p": "p3"})
            conn.execute(text("DELETE FROM dispute_party WHERE partner_id = 'p2'"))
            conn.execute(
                text("UPDATE dispute_party SET partner_id = 'p4' WHERE dispute_number = :n"),
                {"n": "DSP-2026-000003"},
            )
            conn.execute(
                text("UPDATE dispute SET facts = 'changed' WHERE number = :n"),
                {"n": "DSP-2026-000001"},
            )
        # Two writers add a party to one dispute at the same moment: the second waits for the
        # first's row and must add to what the first committed, not to what it saw before.
        first, second = engine.connect(), engine.connect()
        first.begin()
        first.execute(party, {"n": "DSP-2026-000002", "p": "p1"})
        second.begin()
        blocked = threading.Thread(
            target=lambda: second.execute(party, {"n": "DSP-2026-000002", "p": "p2"})
        )
        blocked.start()
        blocked.join(1.0)
        assert blocked.is_alive()  # waiting on the first writer's row of dispute_search
        first.commit()
        blocked.join(10)
        second.commit()
        first.close()
        second.close()
        with engine.connect() as conn:
            rows = [(n, sorted(p)) for n, p in conn.execute(mirrored)]
            truth = conn.execute(
                text(
                    "SELECT dispute_number, array_agg(partner_id ORDER BY partner_id)"
                    " FROM dispute_party GROUP BY dispute_number ORDER BY dispute_number"
                )
            ).all()
        assert rows == [
            ("DSP-2026-000001", ["p1"]),
            ("DSP-2026-000002", ["p1", "p2"]),
            ("DSP-2026-000003", ["p4"]),
        ]
        assert [(n, p) for n, p in rows if p] == [(n, list(p)) for n, p in truth]
        engine.dispose()
        command.downgrade(alembic_config(url), "0031")
        engine = make_engine(url)
        with engine.connect() as conn:
            columns = conn.execute(
                text(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_name = 'dispute_search' AND column_name = 'parties'"
                )
            ).all()
            assert columns == []
            conn.execute(party, {"n": "DSP-2026-000003", "p": "p2"})  # no trigger left behind
        engine.dispose()
    finally:
        drop()
