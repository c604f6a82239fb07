"""idempotency results: the dispute's answer kept with the key that asked for it

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 17:50:00

A request sent again under its key is answered from here, also after the dispute continued as
new (Temporal knows an update id within one run only). Keys recorded before have no answer
kept and ask the dispute, as before.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0021'
down_revision: Union[str, None] = '0020'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('idempotency_record') as batch:
        batch.add_column(sa.Column('result', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('idempotency_record') as batch:
        batch.drop_column('result')
