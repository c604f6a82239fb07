"""panel seats: board members' seats on review panels, counted against their case limits

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 10:00:00

One row per dispute, review round and seat (a board function, or 'chair'). A seat held on an
open dispute counts against the member's case limit, like a mediator's open assignment; it is
released when the member recuses or a new review round replaces the panel. Panels drawn
before this migration have no rows: their members simply carried no load, as before.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0013'
down_revision: Union[str, None] = '0012'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('panel_seat',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dispute_number', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('review_round', sa.Integer(), nullable=False),
    sa.Column('seat', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('person_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('seated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['dispute_number'], ['dispute.number'], ),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dispute_number', 'review_round', 'seat')
    )
    with op.batch_alter_table('panel_seat', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_panel_seat_dispute_number'), ['dispute_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_panel_seat_person_id'), ['person_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('panel_seat', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_panel_seat_person_id'))
        batch_op.drop_index(batch_op.f('ix_panel_seat_dispute_number'))
    op.drop_table('panel_seat')
