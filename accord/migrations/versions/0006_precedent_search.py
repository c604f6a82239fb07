"""precedent full-text search

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 06:30:00

Two searchable texts per precedent (the full record, and the anonymised view partners search)
and a full-text index over each: SQLite FTS5 (an external-content table kept in step by
triggers), PostgreSQL tsvector columns generated from the texts with GIN indexes.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: Union[str, None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('precedent', schema=None) as batch_op:
        batch_op.add_column(sa.Column('search_text', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('public_text', sa.Text(), server_default='', nullable=False))
    _backfill()
    if op.get_bind().dialect.name == 'sqlite':
        op.execute(
            "CREATE VIRTUAL TABLE precedent_fts USING fts5(search_text, public_text,"
            " content='precedent', content_rowid='id', tokenize='porter unicode61')"
        )
        op.execute(
            "CREATE TRIGGER precedent_fts_insert AFTER INSERT ON precedent BEGIN"
            " INSERT INTO precedent_fts(rowid, search_text, public_text)"
            " VALUES (new.id, new.search_text, new.public_text); END"
        )
        op.execute(
            "CREATE TRIGGER precedent_fts_delete AFTER DELETE ON precedent BEGIN"
            " INSERT INTO precedent_fts(precedent_fts, rowid, search_text, public_text)"
            " VALUES ('delete', old.id, old.search_text, old.public_text); END"
        )
        op.execute(
            "CREATE TRIGGER precedent_fts_update AFTER UPDATE ON precedent BEGIN"
            " INSERT INTO precedent_fts(precedent_fts, rowid, search_text, public_text)"
            " VALUES ('delete', old.id, old.search_text, old.public_text);"
            " INSERT INTO precedent_fts(rowid, search_text, public_text)"
            " VALUES (new.id, new.search_text, new.public_text); END"
        )
        op.execute("INSERT INTO precedent_fts(precedent_fts) VALUES ('rebuild')")
    else:
        op.execute(
            "ALTER TABLE precedent ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS"
            " (to_tsvector('english', search_text)) STORED"
        )
        op.execute(
            "ALTER TABLE precedent ADD COLUMN public_tsv tsvector GENERATED ALWAYS AS"
            " (to_tsvector('english', public_text)) STORED"
        )
        op.execute("CREATE INDEX ix_precedent_search_tsv ON precedent USING GIN (search_tsv)")
        op.execute("CREATE INDEX ix_precedent_public_tsv ON precedent USING GIN (public_tsv)")


def _backfill() -> None:
    """Precedents written before this revision get their texts now."""
    from sqlmodel import Session, select

    from accord.precedents.anonymity import Population
    from accord.precedents.library import search_texts
    from models.tables import Precedent

    session = Session(bind=op.get_bind())
    rows = session.exec(
        select(Precedent.id, Precedent.dispute_number, Precedent.clauses, Precedent.facts,
               Precedent.rationale, Precedent.remedies, Precedent.parties,
               Precedent.category, Precedent.playbook_version, Precedent.outcome,
               Precedent.votes_summary, Precedent.timeline, Precedent.decided_at,
               Precedent.claimant_tier, Precedent.claimant_region, Precedent.amount_at_stake,
               Precedent.contested_objects, Precedent.precedents_cited)
    ).all()
    table = sa.table('precedent', sa.column('id'), sa.column('search_text'), sa.column('public_text'))
    for row in rows:
        record = Precedent(**row._asdict())
        # No directory yet: every party is "a partner"; 0023 anonymises them again against it.
        full, public = search_texts(record, Population(()))
        op.execute(table.update().where(table.c.id == row.id).values(search_text=full, public_text=public))


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        for trigger in ('insert', 'delete', 'update'):
            op.execute(f"DROP TRIGGER IF EXISTS precedent_fts_{trigger}")
        op.execute("DROP TABLE IF EXISTS precedent_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_precedent_public_tsv")
        op.execute("DROP INDEX IF EXISTS ix_precedent_search_tsv")
        op.execute("ALTER TABLE precedent DROP COLUMN IF EXISTS public_tsv")
        op.execute("ALTER TABLE precedent DROP COLUMN IF EXISTS search_tsv")
    with op.batch_alter_table('precedent', schema=None) as batch_op:
        batch_op.drop_column('public_text')
        batch_op.drop_column('search_text')
