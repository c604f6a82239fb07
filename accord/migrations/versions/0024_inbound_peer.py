"""inbound peer: the SMTP client's address and HELO name kept with each received message

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-04 17:30:00

What SPF checks when Accord verifies senders itself (ACCORD_INTAKE_VERIFY=self); the check
runs when the message is processed (and again on a retry), not while the sender waits. Rows
received before have neither: mail fetched over IMAP has neither either.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0024'
down_revision: Union[str, None] = '0023'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_message') as batch:
        batch.add_column(sa.Column('peer_ip', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch.add_column(sa.Column('helo', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('inbound_message') as batch:
        batch.drop_column('helo')
        batch.drop_column('peer_ip')
