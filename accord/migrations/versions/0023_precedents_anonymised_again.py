"""precedents anonymised again: every part of contacts' names, amounts in every form, the
parties' own references, and party labels k partners share

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04 17:50:00

Precedents written before this revision kept contacts' surnames, bare amounts, deal and invoice
references and labels naming a single partner in their anonymised text, which partners search.
Their searchable texts and facet lines are made again here against the directory (with the
default amount threshold and k; `accord reindex-precedents` makes them again with the configured
ones). The full-text indexes follow: SQLite's by its update trigger, PostgreSQL's generated
tsvector columns by themselves. Nothing to undo on downgrade: the texts are only ever derived.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from accord.migrations import online

revision: str = '0023'
down_revision: Union[str, None] = '0022'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BATCH = 500


def upgrade() -> None:
    from sqlmodel import Session, select

    from accord.precedents.anonymity import load_population
    from accord.precedents.library import indexed_columns
    from models.tables import Precedent

    # On PostgreSQL outside the migration's transaction, a precedent at a time (online.py): no
    # precedent waits for the whole of it, and it is done again whole if run again.
    with online.outside_on_postgres() as bind:
        session = Session(bind=bind)
        population = load_population(session)
        table = sa.table(
            'precedent', sa.column('id'), sa.column('search_text'), sa.column('public_text'),
            sa.column('facet_values'), sa.column('facet_tokens'),
        )
        columns = (
            Precedent.id, Precedent.dispute_number, Precedent.category, Precedent.playbook_version,
            Precedent.clauses, Precedent.facts, Precedent.contested_objects, Precedent.outcome,
            Precedent.remedies, Precedent.rationale, Precedent.timeline, Precedent.claimant_tier,
            Precedent.claimant_region, Precedent.amount_at_stake, Precedent.decided_at,
            Precedent.parties, Precedent.precedents_cited, Precedent.votes_summary,
        )
        last = 0
        while True:
            rows = session.exec(
                select(*columns).where(Precedent.id > last).order_by(Precedent.id).limit(BATCH)
            ).all()
            if not rows:
                break
            for row in rows:
                record = Precedent(**row._asdict())
                values = indexed_columns(record, population)
                bind.execute(table.update().where(table.c.id == row.id).values(**values))
            last = rows[-1].id


def downgrade() -> None:
    pass
