"""precedent facets and dispute full-text search

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 08:20:00

precedent_facet holds a precedent's many-valued facets (remedy kinds, clauses, SLA met or
breached), backfilled from the precedents already written. Disputes get a full-text index of
their number, parties, summary and facts: an FTS5 table kept in step by triggers on SQLite (the
dispute's key is text, so the index carries it as an unindexed column; summary and facts never
change after filing, so the update trigger almost never fires), a generated tsvector with a GIN
index on PostgreSQL.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from accord.migrations import online

revision: str = '0007'
down_revision: Union[str, None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

DISPUTE_TEXT = "{t}.number || ' ' || {t}.claimant_id || ' ' || {t}.respondent_ids || ' ' || {t}.summary || ' ' || {t}.facts"


def upgrade() -> None:
    # Run again from here if it stopped in one of the PostgreSQL fills below, after this was
    # committed: the table is there, and the fills put in only what is missing.
    if not sa.inspect(op.get_bind()).has_table('precedent_facet'):
        _facets()
    _backfill_facets()
    if op.get_bind().dialect.name == 'sqlite':
        _dispute_index_sqlite()
    else:
        _dispute_vectors_postgres()


def _facets() -> None:
    op.create_table(
        'precedent_facet',
        sa.Column('precedent_id', sa.Integer(), nullable=False),
        sa.Column('facet', sa.String(length=16), nullable=False),
        sa.Column('value', sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(['precedent_id'], ['precedent.id']),
        sa.PrimaryKeyConstraint('precedent_id', 'facet', 'value'),
    )
    op.create_index('ix_precedent_facet_value', 'precedent_facet', ['facet', 'value', 'precedent_id'])


def _dispute_index_sqlite() -> None:
    op.execute("CREATE VIRTUAL TABLE dispute_fts USING fts5(number UNINDEXED, body, tokenize='porter unicode61')")
    op.execute(
        "CREATE TRIGGER dispute_fts_insert AFTER INSERT ON dispute BEGIN"
        f" INSERT INTO dispute_fts(number, body) VALUES (new.number, {DISPUTE_TEXT.format(t='new')}); END"
    )
    op.execute(
        "CREATE TRIGGER dispute_fts_update AFTER UPDATE OF claimant_id, respondent_ids, summary, facts"
        " ON dispute BEGIN DELETE FROM dispute_fts WHERE number = old.number;"
        f" INSERT INTO dispute_fts(number, body) VALUES (new.number, {DISPUTE_TEXT.format(t='new')}); END"
    )
    op.execute(
        "CREATE TRIGGER dispute_fts_delete AFTER DELETE ON dispute BEGIN"
        " DELETE FROM dispute_fts WHERE number = old.number; END"
    )
    op.execute(f"INSERT INTO dispute_fts(number, body) SELECT number, {DISPUTE_TEXT.format(t='dispute')} FROM dispute")


# The vector of a dispute's text, kept by a trigger rather than a generated column: adding a
# generated column rewrites the table under its strongest lock (every read and write of disputes
# waited for the whole rewrite); a plain column is added at once, the trigger keeps new and
# changed rows right from then on, and the rows already there are filled in batches (online.py).
PG_TEXT = DISPUTE_TEXT.format(t='{t}').replace('respondent_ids', 'respondent_ids::text')
PG_VECTOR = """
CREATE OR REPLACE FUNCTION dispute_search_tsv() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_tsv := to_tsvector('english', {text});
    RETURN NEW;
END $$
"""


def _dispute_vectors_postgres() -> None:
    op.execute("ALTER TABLE dispute ADD COLUMN IF NOT EXISTS search_tsv tsvector")
    op.execute(PG_VECTOR.format(text=PG_TEXT.format(t='NEW')))
    op.execute("DROP TRIGGER IF EXISTS dispute_search_tsv ON dispute")
    op.execute(
        "CREATE TRIGGER dispute_search_tsv BEFORE INSERT OR UPDATE OF number, claimant_id,"
        " respondent_ids, summary, facts ON dispute"
        " FOR EACH ROW EXECUTE FUNCTION dispute_search_tsv()"
    )
    online.in_batches(
        f"UPDATE dispute SET search_tsv = to_tsvector('english', {PG_TEXT.format(t='dispute')})"
        " WHERE number > :low AND number <= :high AND search_tsv IS NULL",
        table='dispute',
        key='number',
        below='',
    )
    online.create_index('ix_dispute_search_tsv', 'dispute', 'search_tsv', using='GIN')


def _backfill_facets() -> None:
    """Each precedent's facets. On PostgreSQL outside the migration's transaction, a precedent
    at a time, so that the new table's foreign key (its lock on precedent) is committed first
    and no precedent waits for the whole fill; what is there already is kept (a run again)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlmodel import Session, select

    from accord.precedents.library import facet_values
    from models.tables import Precedent

    table = sa.table('precedent_facet', sa.column('precedent_id'), sa.column('facet'), sa.column('value'))
    with online.outside_on_postgres() as bind:
        session = Session(bind=bind)
        rows = session.exec(select(Precedent.id, Precedent.remedies, Precedent.clauses, Precedent.timeline)).all()
        for row in rows:
            record = Precedent(remedies=row.remedies, clauses=row.clauses, timeline=row.timeline)
            facets = [{'precedent_id': row.id, 'facet': f, 'value': v} for f, v in facet_values(record)]
            if not facets:
                continue
            if bind.dialect.name == 'postgresql':
                bind.execute(pg_insert(table).values(facets).on_conflict_do_nothing())
            else:
                bind.execute(table.insert(), facets)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        for trigger in ('insert', 'update', 'delete'):
            op.execute(f"DROP TRIGGER IF EXISTS dispute_fts_{trigger}")
        op.execute("DROP TABLE IF EXISTS dispute_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_dispute_search_tsv")
        op.execute("DROP TRIGGER IF EXISTS dispute_search_tsv ON dispute")
        op.execute("DROP FUNCTION IF EXISTS dispute_search_tsv()")
        op.execute("ALTER TABLE dispute DROP COLUMN IF EXISTS search_tsv")
    op.drop_index('ix_precedent_facet_value', table_name='precedent_facet')
    op.drop_table('precedent_facet')
