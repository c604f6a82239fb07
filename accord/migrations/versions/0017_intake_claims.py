"""inbound messages are claimed before processing, and fail into view

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 16:40:00

A processor claims a message (claim_token, claimed_until) before it works on it, so two
intake processes never process one message at once, and a crashed one's claim lapses; a failed
attempt is written down in plain words (last_error) and backs off by pushing claimed_until.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel

import models.tables


revision: str = '0017'
down_revision: Union[str, None] = '0016'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_message', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('claim_token', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.add_column(
            sa.Column('claimed_until', models.tables.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column('last_error', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('inbound_message', schema=None) as batch_op:
        batch_op.drop_column('last_error')
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('claim_token')
