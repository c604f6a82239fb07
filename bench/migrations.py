"""An upgrade on a populated PostgreSQL database while the product keeps serving (issue 19,
item 4: from 0006 to head on 200,000 disputes and 2,000,000 audit entries took 253 s, and reads
and writes on `dispute` and `dispute_event` were blocked in 174 of 196 probes).

    python -m bench.migrations --disputes 200000 --entries 2000000

Makes a database of its own (dropped at the end), migrated to FROM (0006) and filled the way a
deployment of that release would be, then runs `accord migrate`'s upgrade to head while probes
read and write disputes and their audit entries the way the web tier and the workers do. A
probe waits at most LOCK_WAIT for a lock; one that waits longer is counted blocked. The figures:
the upgrade's time, the probes made, blocked and failed, and their slowest.

tests/platform/test_online_migrations.py runs the same on a smaller database and fails on any
blocked or failed probe.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from dataclasses import dataclass, field

import psycopg
from psycopg import errors

from accord.platform.schema import upgrade
from bench.common import Goal, Report, add_arguments, pct, scratch_database

FROM = "0006"
LOCK_WAIT = "1s"
"""How long a probe waits for a lock before it counts as blocked: far longer than the brief
locks an online migration takes (a catalogue change, milliseconds), far shorter than a request's
patience."""

PARTNERS = 40

FILL_PARTNERS = """
INSERT INTO partner (id, name, tier, regions, email_domains, calendar, is_direct_sales, active)
SELECT 'p' || s, 'Partner ' || s, 'gold', '["EMEA"]', ('["p' || s || '.test"]')::json, 'default',
       false, true
FROM generate_series(1, {partners}) AS s
"""
FILL_DISPUTES = """
INSERT INTO dispute (number, category, claimant_id, respondent_ids, party_key, contested_objects,
                     summary, facts, desired_remedy, amount_at_stake, currency, occurred_on,
                     stage, playbook_version, filed_by, filed_at, updated_at)
SELECT 'DSP-2026-' || lpad(s::text, 7, '0'), 'deal_registration',
       'p' || (1 + s % {partners}), ('["p' || (1 + (s + 1) % {partners}) || '"]')::json,
       'p' || (1 + s % {partners}) || '|p' || (1 + (s + 1) % {partners}), '[]',
       'Registration ' || s || ' claimed twice for account ' || (s % 997),
       'Both partners registered the opportunity for account ' || (s % 997)
         || ' in the same quarter; the claimant registered first, on day ' || (s % 90) || '.',
       'Credit the margin', 1000 + s % 50000, 'USD', DATE '2026-01-01' + (s % 300)::int,
       'mediation', '2026.1', 'filer@p' || (1 + s % {partners}) || '.test',
       TIMESTAMPTZ '2026-01-01' + s * INTERVAL '1 minute', now()
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS s
"""
FILL_PARTIES = """
INSERT INTO dispute_party (dispute_number, partner_id, side)
SELECT 'DSP-2026-' || lpad(s::text, 7, '0'), 'p' || (1 + s % {partners}), 'claimant'
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS s
UNION ALL
SELECT 'DSP-2026-' || lpad(s::text, 7, '0'), 'p' || (1 + (s + 1) % {partners}), 'respondent'
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS s
"""
FILL_EVENTS = """
INSERT INTO dispute_event (dispute_number, seq, at, actor_id, actor_role, action, content,
                           prev_hash, hash)
SELECT 'DSP-2026-' || lpad((1 + e / {per})::text, 7, '0'), e % {per}, now(), 'system', 'system',
       CASE WHEN e % {per} = 0 THEN 'filed' ELSE 'note_added' END, '{{}}',
       repeat('0', 64), repeat('0', 64)
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS e
"""


FILL_PRECEDENTS = """
INSERT INTO precedent (dispute_number, category, playbook_version, clauses, facts,
                       contested_objects, outcome, remedies, rationale, timeline, claimant_tier,
                       claimant_region, amount_at_stake, decided_at, search_text, public_text)
SELECT 'DSP-2026-' || lpad(s::text, 7, '0'), 'deal_registration', '2026.1', '["RoE 3.1"]',
       repeat('The partners registered the same account. ', 20), '[]', 'settled',
       '[{{"kind": "commission_split", "amount": "10"}}]',
       repeat('The first registration stands. ', 20), '[]', 'gold', 'EMEA', 1000, now(),
       repeat('registration account partner ', 30), repeat('registration account ', 30)
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS s
"""


def populate(url: str, disputes: int, entries: int, precedents: int | None = None) -> None:
    """Migrates the (empty) database at `url` to FROM and fills it: partners, disputes with two
    parties each, `entries` audit entries spread evenly over the disputes, and a precedent for
    each of the first `precedents` disputes (a twentieth of them unless given)."""
    precedents = disputes // 20 if precedents is None else precedents
    upgrade(url, FROM)
    per = max(1, entries // disputes)
    with psycopg.connect(_plain(url), autocommit=True) as connection:
        connection.execute(FILL_PARTNERS.format(partners=PARTNERS).encode())
        for sql, total in (
            (FILL_DISPUTES, disputes),
            (FILL_PARTIES, disputes),
            (FILL_EVENTS, entries),
            (FILL_PRECEDENTS, precedents),
        ):
            statement = sql.format(partners=PARTNERS, per=per)
            first, last = (0, total - 1) if sql is FILL_EVENTS else (1, total)
            for start in range(first, last + 1, 200_000):
                # Integers only, put in the text: the statements' % is SQL's modulo.
                batch = statement.replace(":first", str(start))
                connection.execute(batch.replace(":last", str(min(start + 199_999, last))).encode())
        connection.execute(b"VACUUM ANALYZE")


@dataclass
class Probes:
    """Reads and writes on dispute, dispute_event and precedent, one after another on one
    connection, each its own short transaction, until stopped."""

    url: str
    disputes: int
    precedents: int = 0
    made: int = 0
    durations: list[float] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Probes:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)

    def _run(self) -> None:
        chosen = random.Random(7)
        seq = 10_000
        with psycopg.connect(_plain(self.url), autocommit=True, prepare_threshold=None) as conn:
            conn.execute(f"SET lock_timeout = '{LOCK_WAIT}'".encode())
            while not self._stop.is_set():
                number = f"DSP-2026-{1 + chosen.randrange(self.disputes):07d}"
                precedent = 1 + chosen.randrange(max(1, self.precedents))
                seq += 1
                # What the product does most: show a dispute, record a stage change on it, append
                # to its trail, read its trail.
                for name, sql, params in (
                    (
                        "read dispute",
                        b"SELECT stage, updated_at FROM dispute WHERE number = %s",
                        (number,),
                    ),
                    (
                        "write dispute",
                        b"UPDATE dispute SET updated_at = now() WHERE number = %s",
                        (number,),
                    ),
                    (
                        "append entry",
                        b"INSERT INTO dispute_event (dispute_number, seq, at, actor_id, actor_role,"
                        b" action, content, prev_hash, hash) VALUES (%s, %s, now(), 'system',"
                        b" 'system', 'note_added', '{}', repeat('0', 64), repeat('0', 64))",
                        (number, seq),
                    ),
                    (
                        "read trail",
                        b"SELECT seq, action FROM dispute_event WHERE dispute_number = %s"
                        b" ORDER BY seq",
                        (number,),
                    ),
                    # A precedent read (search opens them) and written (a ruling records one).
                    (
                        "read precedent",
                        b"SELECT outcome, rationale FROM precedent WHERE id = %s",
                        (precedent,),
                    ),
                    (
                        "write precedent",
                        b"UPDATE precedent SET rationale = rationale WHERE id = %s",
                        (precedent,),
                    ),
                ):
                    started = time.perf_counter()
                    try:
                        with conn.transaction():
                            conn.execute(sql, params).fetchall() if sql.startswith(
                                b"SELECT"
                            ) else conn.execute(sql, params)
                    except errors.LockNotAvailable:
                        self.blocked.append(f"{name} at {time.strftime('%H:%M:%S')}")
                    except psycopg.Error as error:
                        self.failed.append(f"{name}: {type(error).__name__}: {error}")
                    else:
                        self.durations.append(time.perf_counter() - started)
                    self.made += 1
                time.sleep(0.02)


@dataclass
class Outcome:
    seconds: float
    probes: Probes


def upgrade_while_probed(url: str, disputes: int, precedents: int | None = None) -> Outcome:
    precedents = disputes // 20 if precedents is None else precedents
    probes = Probes(url, disputes, precedents).start()
    time.sleep(0.5)  # the probes run before the upgrade starts, as the product would
    started = time.perf_counter()
    try:
        upgrade(url)
    finally:
        seconds = time.perf_counter() - started
        time.sleep(0.5)
        probes.stop()
    return Outcome(seconds, probes)


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--disputes", type=int, default=200_000)
    parser.add_argument("--entries", type=int, default=2_000_000)
    parser.add_argument(
        "--database", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    add_arguments(parser)
    args = parser.parse_args()
    report = Report("migrations", args, label="online migrations (postgresql)")
    with scratch_database(args.database, "bench_migrations") as url:
        started = time.perf_counter()
        populate(url, args.disputes, args.entries)
        report.note(
            f"{args.disputes:,} disputes, {args.entries:,} audit entries and"
            f" {args.disputes // 20:,} precedents at {FROM}, written in"
            f" {time.perf_counter() - started:.0f} s"
        )
        outcome = upgrade_while_probed(url, args.disputes)
        probes = outcome.probes
        report.figure(f"upgrade from {FROM} to head", outcome.seconds, "s")
        report.figure("probes made during the upgrade", probes.made, "")
        report.figure(
            f"probes blocked (a lock waited for over {LOCK_WAIT})",
            len(probes.blocked),
            "",
            Goal(at_most=0),
        )
        report.figure("probes failed otherwise", len(probes.failed), "", Goal(at_most=0))
        if probes.durations:
            report.figure("a probe, p99", pct(probes.durations, 99) * 1000, "ms")
            report.figure("the slowest probe that finished", max(probes.durations) * 1000, "ms")
        for line in (probes.blocked + probes.failed)[:10]:
            report.note(line)
    report.finish()


if __name__ == "__main__":
    main()
