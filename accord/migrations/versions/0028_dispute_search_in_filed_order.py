"""dispute search: the SQLite index walks disputes newest filed first

Revision ID: 0028
Revises: 0025
Create Date: 2026-12-05 00:00:00

A dispute search ranks its matches, newest filed first among equals. On SQLite the FTS5 index
(0007) carried the dispute's number as an unindexed column, so ordering a common word's matches
read every match's number and filing time (9,000 row reads, ~40 ms, at 100,000 disputes), and a
page's snippets scanned every match for its numbers. Now the index's rowid is the filing time
(in units of 100 microseconds, times 65,536, plus a count among disputes filed in the same unit;
past a full band, as a bulk load giving more disputes one filing time could fill, after every
rowid), so rank and rowid order a page without reading a row, and dispute_fts_key maps numbers
to rowids both ways. Triggers keep both in step; existing disputes are indexed again.

On PostgreSQL the GIN index was on the dispute table itself, so counting and ranking a common
word's matches visited a heap page of wide dispute rows per match (5,400 pages, ~35 ms).
dispute_search holds each dispute's number, filing time and text vector only, with the GIN index,
kept in step by a trigger (deleted with its dispute); dispute.search_tsv stays as its source.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from accord.migrations import online

revision: str = '0028'
down_revision: Union[str, None] = '0026'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BODY = "{t}.number || ' ' || {t}.claimant_id || ' ' || {t}.respondent_ids || ' ' || {t}.summary || ' ' || {t}.facts"
BAND = 65536
"""Disputes filed in the same 100 microseconds share a band of this many rowids."""
FILED = (
    "(unixepoch({t}.filed_at) * 10000 + CASE WHEN substr({t}.filed_at, 20, 1) = '.'"
    " THEN CAST(substr({t}.filed_at, 21, 4) AS INTEGER) ELSE 0 END)"
)
"""When dispute {t} was filed, in units of 100 microseconds since 1970 (as SQLAlchemy stores
times: the first four of six fractional digits)."""
KEY = f"(coalesce({FILED}, 0) * {BAND})"
"""The first rowid of the band of the instant dispute {t} was filed in."""


def _drop_0007() -> None:
    for trigger in ('insert', 'update', 'delete'):
        op.execute(f"DROP TRIGGER IF EXISTS dispute_fts_{trigger}")
    op.execute("DROP TABLE IF EXISTS dispute_fts")


PG_SYNC = """
CREATE OR REPLACE FUNCTION dispute_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dispute_search (number, filed_at, tsv) VALUES (NEW.number, NEW.filed_at, NEW.search_tsv)
    ON CONFLICT (number) DO UPDATE SET filed_at = EXCLUDED.filed_at, tsv = EXCLUDED.tsv;
    RETURN NEW;
END $$
"""


def _upgrade_postgres() -> None:
    """While disputes are filed and changed: the trigger that keeps the table right is committed
    first, then the disputes already there are copied in batches (one the trigger wrote
    meanwhile is newer, and kept), then the index is built concurrently. Safe to run again from
    the start if it stopped midway."""
    op.execute(
        "CREATE TABLE IF NOT EXISTS dispute_search (number VARCHAR(32) PRIMARY KEY"
        " REFERENCES dispute (number) ON DELETE CASCADE,"
        " filed_at TIMESTAMP WITH TIME ZONE NOT NULL, tsv tsvector NOT NULL)"
    )
    op.execute(PG_SYNC)
    op.execute("DROP TRIGGER IF EXISTS dispute_search_sync ON dispute")
    op.execute(
        "CREATE TRIGGER dispute_search_sync AFTER INSERT OR UPDATE OF claimant_id, respondent_ids,"
        " summary, facts, filed_at ON dispute FOR EACH ROW EXECUTE FUNCTION dispute_search_sync()"
    )
    online.in_batches(
        "INSERT INTO dispute_search SELECT number, filed_at, search_tsv FROM dispute"
        " WHERE number > :low AND number <= :high ON CONFLICT (number) DO NOTHING",
        table='dispute',
        key='number',
        below='',
    )
    online.create_index('ix_dispute_search_tsv_only', 'dispute_search', 'tsv', using='GIN')
    online.drop_index('ix_dispute_search_tsv')
    online.run_outside_transaction("ANALYZE dispute_search")


def _downgrade_postgres() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS ix_dispute_search_tsv ON dispute USING GIN (search_tsv)")
    op.execute("DROP TRIGGER IF EXISTS dispute_search_sync ON dispute")
    op.execute("DROP FUNCTION IF EXISTS dispute_search_sync()")
    op.execute("DROP TABLE IF EXISTS dispute_search")


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        _upgrade_postgres()
        return
    _drop_0007()
    op.execute(
        "CREATE TABLE dispute_fts_key (fts_rowid INTEGER PRIMARY KEY,"
        " number VARCHAR(32) NOT NULL UNIQUE)"
    )
    op.execute("CREATE VIRTUAL TABLE dispute_fts USING fts5(body, tokenize='porter unicode61')")
    new_key = KEY.format(t='new')
    # The next free rowid of the band; when the band is full (a bulk import giving more than
    # BAND disputes one filing time), the next after every rowid: never one already taken.
    op.execute(
        "CREATE TRIGGER dispute_fts_insert AFTER INSERT ON dispute BEGIN"
        " INSERT INTO dispute_fts_key (fts_rowid, number)"
        f" SELECT CASE WHEN band.next < {new_key} + {BAND} THEN band.next"
        " ELSE (SELECT max(fts_rowid) + 1 FROM dispute_fts_key) END, new.number"
        f" FROM (SELECT coalesce(max(fts_rowid) + 1, {new_key}) AS next FROM dispute_fts_key"
        f" WHERE fts_rowid >= {new_key} AND fts_rowid < {new_key} + {BAND}) AS band;"
        " INSERT INTO dispute_fts (rowid, body)"
        f" SELECT fts_rowid, {BODY.format(t='new')} FROM dispute_fts_key WHERE number = new.number;"
        " END"
    )
    op.execute(
        "CREATE TRIGGER dispute_fts_update AFTER UPDATE OF claimant_id, respondent_ids, summary, facts"
        f" ON dispute BEGIN UPDATE dispute_fts SET body = {BODY.format(t='new')}"
        " WHERE rowid = (SELECT fts_rowid FROM dispute_fts_key WHERE number = old.number); END"
    )
    op.execute(
        "CREATE TRIGGER dispute_fts_delete AFTER DELETE ON dispute BEGIN"
        " DELETE FROM dispute_fts WHERE rowid = (SELECT fts_rowid FROM dispute_fts_key"
        " WHERE number = old.number);"
        " DELETE FROM dispute_fts_key WHERE number = old.number; END"
    )
    # In filing order, each at its band's start or just after the one before (disputes filed in
    # the same instant, by number; past a full band, into the next).
    bind = op.get_bind()
    filed = bind.execute(
        sa.text(f"SELECT {KEY.format(t='dispute')} AS key, number FROM dispute ORDER BY key, number")
    ).all()
    rowids: list[dict[str, object]] = []
    last = None
    for key, number in filed:
        rowid = key if last is None or key > last else last + 1
        rowids.append({"fts_rowid": rowid, "number": number})
        last = rowid
    if rowids:
        bind.execute(
            sa.text("INSERT INTO dispute_fts_key (fts_rowid, number) VALUES (:fts_rowid, :number)"),
            rowids,
        )
    op.execute(
        f"INSERT INTO dispute_fts (rowid, body) SELECT k.fts_rowid, {BODY.format(t='dispute')}"
        " FROM dispute_fts_key k JOIN dispute ON dispute.number = k.number"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        _downgrade_postgres()
        return
    _drop_0007()
    op.execute("DROP TABLE IF EXISTS dispute_fts_key")
    # As 0007 made them.
    op.execute("CREATE VIRTUAL TABLE dispute_fts USING fts5(number UNINDEXED, body, tokenize='porter unicode61')")
    op.execute(
        "CREATE TRIGGER dispute_fts_insert AFTER INSERT ON dispute BEGIN"
        f" INSERT INTO dispute_fts(number, body) VALUES (new.number, {BODY.format(t='new')}); END"
    )
    op.execute(
        "CREATE TRIGGER dispute_fts_update AFTER UPDATE OF claimant_id, respondent_ids, summary, facts"
        " ON dispute BEGIN DELETE FROM dispute_fts WHERE number = old.number;"
        f" INSERT INTO dispute_fts(number, body) VALUES (new.number, {BODY.format(t='new')}); END"
    )
    op.execute(
        "CREATE TRIGGER dispute_fts_delete AFTER DELETE ON dispute BEGIN"
        " DELETE FROM dispute_fts WHERE number = old.number; END"
    )
    op.execute(f"INSERT INTO dispute_fts(number, body) SELECT number, {BODY.format(t='dispute')} FROM dispute")
