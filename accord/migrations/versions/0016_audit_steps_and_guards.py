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
import secrets
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from accord.migrations import online


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


# While 0016 fills in the steps, the guard lets through that one change, and only in the
# session of the fill, which alone knows the token (made afresh for each run, so a session that
# merely says it fills, or a run stopped midway, gets nothing): an entry without a step getting
# step = seq, every other column the same, the content to its exact text (its hash is of that).
APPEND_ONLY_FILLING_STEPS = """CREATE OR REPLACE FUNCTION dispute_event_append_only()
       RETURNS trigger AS $$
       BEGIN
           IF TG_OP = 'UPDATE' AND current_setting('accord.filling_steps', true) = '{token}'
              AND OLD.step IS NULL AND NEW.step = OLD.seq
              AND NEW.content::text = OLD.content::text
              AND (to_jsonb(NEW) - 'step' - 'content') = (to_jsonb(OLD) - 'step' - 'content') THEN
               RETURN NEW;
           END IF;
           RAISE EXCEPTION 'dispute_event is append-only';
       END; $$ LANGUAGE plpgsql"""
# The release before wrote one entry per step and no step: entries it writes while the next one
# is rolled out (during the fill and after it) get step = seq as they land. The code from here on
# gives every entry its step, except a gap entry, whose steps are in its content.
STEP_OF_OLDER_WRITERS = """CREATE OR REPLACE FUNCTION dispute_event_step() RETURNS trigger AS $$
       BEGIN NEW.step := NEW.seq; RETURN NEW; END; $$ LANGUAGE plpgsql"""
STEP_TRIGGER = """CREATE TRIGGER dispute_event_step BEFORE INSERT ON dispute_event
       FOR EACH ROW WHEN (NEW.step IS NULL AND NEW.action <> 'audit_gap')
       EXECUTE FUNCTION dispute_event_step()"""
APPEND_ONLY = """CREATE OR REPLACE FUNCTION dispute_event_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'dispute_event is append-only'; END; $$ LANGUAGE plpgsql"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgres()
        return
    op.add_column('dispute_event', sa.Column('step', sa.Integer(), nullable=True))
    # The one rewrite the trail ever gets: its entries were written one per step, in order.
    op.execute("DROP TRIGGER dispute_event_no_update")
    op.execute("UPDATE dispute_event SET step = seq")
    op.execute(NO_UPDATE_SQLITE)
    op.execute(NO_REPLACE_SQLITE)
    op.create_index(
        'uq_dispute_event_step', 'dispute_event', ['dispute_number', 'step'], unique=True
    )


def _upgrade_postgres() -> None:
    """The same, while the product writes entries: the guard is never switched off for other
    sessions (it was, with DISABLE TRIGGER, which also held off every write for the whole
    fill), the entries are filled in batches and the index built concurrently. Safe to run
    again from the start if it stopped midway."""
    op.execute("ALTER TABLE dispute_event ADD COLUMN IF NOT EXISTS step integer")
    token = secrets.token_hex(16)
    op.execute(APPEND_ONLY_FILLING_STEPS.format(token=token))
    op.execute("DROP TRIGGER IF EXISTS dispute_event_no_truncate ON dispute_event")
    op.execute(NO_TRUNCATE_POSTGRES)
    op.execute(STEP_OF_OLDER_WRITERS)
    op.execute("DROP TRIGGER IF EXISTS dispute_event_step ON dispute_event")
    op.execute(STEP_TRIGGER)
    online.run_outside_transaction(f"SET accord.filling_steps = '{token}'")
    online.in_batches(
        "UPDATE dispute_event SET step = seq WHERE id > :low AND id <= :high AND step IS NULL",
        table='dispute_event',
        key='id',
        below=0,
    )
    online.run_outside_transaction("RESET accord.filling_steps", APPEND_ONLY)
    online.create_index('uq_dispute_event_step', 'dispute_event', 'dispute_number, step', unique=True)


def downgrade() -> None:
    """Drops the step and the two guards. Gap entries stay (the chain covers them); a dispute
    that has one cannot be recorded by the code of 0015, which takes its seq from the workflow's
    count: downgrade only a database without gap entries."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS dispute_event_no_truncate ON dispute_event")
        op.execute("DROP TRIGGER IF EXISTS dispute_event_step ON dispute_event")
        op.execute("DROP FUNCTION IF EXISTS dispute_event_step()")
    else:
        op.execute("DROP TRIGGER IF EXISTS dispute_event_no_replace")
    op.drop_index('uq_dispute_event_step', table_name='dispute_event')
    op.drop_column('dispute_event', 'step')
