"""dispute search on PostgreSQL: each dispute's parties beside its text vector

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-06 08:00:00

A partner searches only the disputes it is party to. dispute_search (0028) held the text vector
alone, so a partner's search took every match of its words (9,000 for a common word at 100,000
disputes) and hash-joined them with the partner's rows of dispute_party (16,800): 41 ms to count
them, 29 ms for a page. dispute_search.parties now holds the partner ids of dispute_party,
GIN-indexed, so the two indexes are intersected before a row is read: 9 ms and 5 ms.

The column mirrors dispute_party exactly, kept by triggers: a party row added, removed or
changed updates its dispute's array by that one partner. The update is relative to the row it
lands on, so two transactions adding parties to one dispute at once both count (the second
waits for the first's row and applies its change to the committed array, as PostgreSQL re-reads
a row updated under it). Nothing changes on SQLite, whose search index is FTS5.
"""
from typing import Sequence, Union

from alembic import op

from accord.migrations import online

revision: str = '0032'
down_revision: Union[str, None] = '0031'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

PARTIES_OF = (
    "ARRAY(SELECT partner_id FROM dispute_party WHERE dispute_number = {number}"
    " ORDER BY partner_id)::varchar[]"
)

# 0028's function, which also gives a dispute indexed afresh the parties it already has (none
# at filing: its party rows come after it, through the trigger below).
PG_SYNC = f"""
CREATE OR REPLACE FUNCTION dispute_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dispute_search (number, filed_at, tsv, parties)
    VALUES (NEW.number, NEW.filed_at, NEW.search_tsv, {PARTIES_OF.format(number='NEW.number')})
    ON CONFLICT (number) DO UPDATE SET filed_at = EXCLUDED.filed_at, tsv = EXCLUDED.tsv;
    RETURN NEW;
END $$
"""
PG_SYNC_0028 = """
CREATE OR REPLACE FUNCTION dispute_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dispute_search (number, filed_at, tsv) VALUES (NEW.number, NEW.filed_at, NEW.search_tsv)
    ON CONFLICT (number) DO UPDATE SET filed_at = EXCLUDED.filed_at, tsv = EXCLUDED.tsv;
    RETURN NEW;
END $$
"""
PG_PARTIES = """
CREATE OR REPLACE FUNCTION dispute_search_parties() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE dispute_search SET parties = array_remove(parties, OLD.partner_id::varchar)
        WHERE number = OLD.dispute_number;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE dispute_search SET parties = array_append(parties, NEW.partner_id::varchar)
        WHERE number = NEW.dispute_number AND NOT (NEW.partner_id::varchar = ANY (parties));
    END IF;
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    """While parties are added: the column (a constant default, so no rewrite), the triggers
    that keep it right, committed first, then the disputes already there filled in batches,
    each merged with what a trigger put there meanwhile; then the index, built concurrently.
    Safe to run again from the start if it stopped midway."""
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(
        "ALTER TABLE dispute_search ADD COLUMN IF NOT EXISTS parties varchar[] NOT NULL DEFAULT '{}'"
    )
    op.execute(PG_SYNC)
    op.execute(PG_PARTIES)
    op.execute("DROP TRIGGER IF EXISTS dispute_search_parties ON dispute_party")
    op.execute(
        "CREATE TRIGGER dispute_search_parties AFTER INSERT OR DELETE OR UPDATE OF"
        " dispute_number, partner_id ON dispute_party"
        " FOR EACH ROW EXECUTE FUNCTION dispute_search_parties()"
    )
    online.in_batches(
        "UPDATE dispute_search SET parties = ARRAY(SELECT DISTINCT p FROM unnest(parties"
        f" || {PARTIES_OF.format(number='dispute_search.number')}) AS p ORDER BY p)"
        " WHERE number > :low AND number <= :high"
        " AND number IN (SELECT dispute_number FROM dispute_party)",
        table='dispute_search',
        key='number',
        below='',
        # A party a request removes while the batch waits for its row must stay removed.
        lock_first=True,
    )
    online.create_index('ix_dispute_search_parties', 'dispute_search', 'parties', using='GIN')
    online.run_outside_transaction("ANALYZE dispute_search")


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("DROP TRIGGER IF EXISTS dispute_search_parties ON dispute_party")
    op.execute("DROP FUNCTION IF EXISTS dispute_search_parties()")
    op.execute(PG_SYNC_0028)
    op.execute("DROP INDEX IF EXISTS ix_dispute_search_parties")
    op.execute("ALTER TABLE dispute_search DROP COLUMN IF EXISTS parties")
