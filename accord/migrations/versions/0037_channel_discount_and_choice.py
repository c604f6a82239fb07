"""what the rules of engagement read of a registration or an opportunity: its discount off the
list price, and when the customer confirmed the partner in writing

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-07 16:30:00

The pricing bands of the decision tables compare a partner's discount with its tier's band; the
customer's written choice prevails over registration order. Both come from the CRM: nullable
columns, empty for rows imported before.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import models.tables

revision: str = '0037'
down_revision: Union[str, None] = '0036'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Nullable columns 0036's code never reads or writes: its processes stay ready.
serves_previous_release = True


def upgrade() -> None:
    with op.batch_alter_table('deal_registration') as batch:
        batch.add_column(sa.Column('discount', sa.Numeric(5, 2), nullable=True))
        batch.add_column(
            sa.Column(
                'customer_chose_at', models.tables.UTCDateTime(timezone=True), nullable=True
            )
        )
    with op.batch_alter_table('opportunity') as batch:
        batch.add_column(sa.Column('discount', sa.Numeric(5, 2), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('opportunity') as batch:
        batch.drop_column('discount')
    with op.batch_alter_table('deal_registration') as batch:
        batch.drop_column('customer_chose_at')
        batch.drop_column('discount')
