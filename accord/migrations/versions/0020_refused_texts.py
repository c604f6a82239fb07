"""refused texts: stored texts whose action the dispute refused take no place under the limits

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 17:45:00

A text is stored before the workflow is asked; when the dispute refuses the action, the text
was not said. `dispute_text` is append-only, so the refusal is a row of its own here.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0020'
down_revision: Union[str, None] = '0019'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('dispute_text_refused',
    sa.Column('text_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('refused_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['text_id'], ['dispute_text.id'], ),
    sa.PrimaryKeyConstraint('text_id')
    )


def downgrade() -> None:
    op.drop_table('dispute_text_refused')
