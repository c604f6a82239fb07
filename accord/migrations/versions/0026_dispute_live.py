"""dispute_live: the live state of each dispute, read by the pages instead of the workflow

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-04 23:50:00

The record activity keeps, in the transaction of each audit entry, the dispute's live state
as the workflow last sent it (stage, deadlines, tasks, offers, requests, review, remedies,
rulings, similar precedents), and its notes one row each. Pages, the API and `accord show`
read these, so they answer with the worker stopped and never replay a history. Disputes from
before have no row until their workflow next records something.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0026'
down_revision: Union[str, None] = '0025'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'dispute_live',
        sa.Column('dispute_number', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('state', sa.JSON(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['dispute_number'], ['dispute.number']),
        sa.PrimaryKeyConstraint('dispute_number'),
    )
    op.create_table(
        'dispute_live_note',
        sa.Column('dispute_number', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('note', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['dispute_number'], ['dispute.number']),
        sa.PrimaryKeyConstraint('dispute_number', 'position'),
    )


def downgrade() -> None:
    op.drop_table('dispute_live_note')
    op.drop_table('dispute_live')
