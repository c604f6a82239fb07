"""the stage deadline's warning instants, for the work queue's SLA state on business time

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-05 21:50:00

The workflow warns the owner of a deadline at 50 % and 80 % of its business time (its calendar's
working hours, without weekends and holidays). The work queue called a task warned at those
fractions of the wall-clock time instead: on a Sunday, a task opened on Friday afternoon was
"half the time used" with one working hour gone. The instants the workflow warns at are now
projected with the stage deadline; rows recorded before keep the old reckoning until their next
deadline is recorded.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import models.tables

revision: str = '0031'
down_revision: Union[str, None] = '0030'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('dispute') as batch:
        for name in ('stage_warning_50_at', 'stage_warning_80_at'):
            batch.add_column(
                sa.Column(name, models.tables.UTCDateTime(timezone=True), nullable=True)
            )


def downgrade() -> None:
    with op.batch_alter_table('dispute') as batch:
        batch.drop_column('stage_warning_80_at')
        batch.drop_column('stage_warning_50_at')
