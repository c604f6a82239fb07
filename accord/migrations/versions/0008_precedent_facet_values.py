"""precedent facet values read with search candidates

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 08:40:00

Each precedent carries its many-valued facets as "facet=value" lines, so a search counts the
facets of its candidates from the rows it reads anyway rather than probing precedent_facet
once per candidate and facet (2,000 candidates x 3 facets). precedent_facet stays: it is what
a facet filter looks up.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from accord.migrations import online

revision: str = '0008'
down_revision: Union[str, None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # A constant default: no rewrite. The rows are filled outside the migration's transaction
    # on PostgreSQL, a precedent at a time (online.py), and filled again if it is run again.
    op.add_column(
        'precedent',
        sa.Column('facet_values', sa.Text(), server_default='', nullable=False),
        if_not_exists=online.postgres(),
    )
    facets = sa.table('precedent_facet', sa.column('precedent_id'), sa.column('facet'), sa.column('value'))
    precedent = sa.table('precedent', sa.column('id'), sa.column('facet_values'))
    lines: dict[int, list[str]] = {}
    with online.outside_on_postgres() as bind:
        for row in bind.execute(
            sa.select(facets.c.precedent_id, facets.c.facet, facets.c.value).order_by(
                facets.c.precedent_id, facets.c.facet, facets.c.value
            )
        ):
            lines.setdefault(row.precedent_id, []).append(f"{row.facet}={row.value}")
        for pid, values in lines.items():
            bind.execute(precedent.update().where(precedent.c.id == pid).values(facet_values="\n".join(values)))


def downgrade() -> None:
    with op.batch_alter_table('precedent', schema=None) as batch_op:
        batch_op.drop_column('facet_values')
