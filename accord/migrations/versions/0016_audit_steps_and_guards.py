"""audit entries keyed by the workflow's step; no TRUNCATE, no INSERT OR REPLACE

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 16:30:00

The workflow used to give each entry its seq before the write, so one write refused for good
left a hole every later entry refused to follow. Now the workflow's step is only the entry's
idempotency key and the activity gives the seq; entries written before carry step = seq.

The append-only guard of 0001 had two holes: PostgreSQL's TRUNCATE fires no row triggers, and
SQLite's INSERT OR REPLACE deletes the row it replaces without firing DELETE triggers (unless
recursive_triggers is on). Both are refused now.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = '0016'
down_revision: Union[str, None] = '0015'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

NO_UPDATE_SQLITE = """CREATE TRIGGER dispute_event_no_update BEFORE UPDATE ON dispute_event
       BEGIN SELECT RAISE(ABORT, 'dispute_event is append-only'); END"""

# Fires before the conflict is resolved, so REPLACE never gets to delete the old entry.
NO_REPLACE_SQLITE = """CREATE TRIGGER dispute_event_no_replace BEFORE INSERT ON dispute_event
       WHEN EXISTS (
           SELECT 1 FROM dispute_event
           WHERE id = NEW.id
              OR (dispute_number = NEW.dispute_number AND (seq = NEW.seq OR step = NEW.step))
       )
       BEGIN SELECT RAISE(ABORT, 'dispute_event is append-only: that entry exists'); END"""

NO_TRUNCATE_POSTGRES = """CREATE TRIGGER dispute_event_no_truncate BEFORE TRUNCATE ON dispute_event
       FOR EACH STATEMENT EXECUTE FUNCTION dispute_event_append_only()"""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.add_column('dispute_event', sa.Column('step', sa.Integer(), nullable=True))
    # The one rewrite the trail ever gets: its entries were written one per step, in order.
    if postgres:
        op.execute("ALTER TABLE dispute_event DISABLE TRIGGER dispute_event_append_only")
        op.execute("UPDATE dispute_event SET step = seq")
        op.execute("ALTER TABLE dispute_event ENABLE TRIGGER dispute_event_append_only")
        op.execute(NO_TRUNCATE_POSTGRES)
    else:
        op.execute("DROP TRIGGER dispute_event_no_update")
        op.execute("UPDATE dispute_event SET step = seq")
        op.execute(NO_UPDATE_SQLITE)
        op.execute(NO_REPLACE_SQLITE)
    op.create_index(
        'uq_dispute_event_step', 'dispute_event', ['dispute_number', 'step'], unique=True
    )


def downgrade() -> None:
    """Drops the step and the two guards. Gap entries stay (the chain covers them); a dispute
    that has one cannot be recorded by the code of 0015, which takes its seq from the workflow's
    count: downgrade only a database without gap entries."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS dispute_event_no_truncate ON dispute_event")
    else:
        op.execute("DROP TRIGGER IF EXISTS dispute_event_no_replace")
    op.drop_index('uq_dispute_event_step', table_name='dispute_event')
    op.drop_column('dispute_event', 'step')
