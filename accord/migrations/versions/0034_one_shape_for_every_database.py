"""one shape for every database: the dispute's text vector and old writers' steps kept by triggers

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-07 11:00:00

0007 and 0016 were rewritten to run while the product serves (online.py). A database that ran
their first versions has dispute.search_tsv as a generated column, and no trigger giving an
entry written without a step (by the release before 0016) step = seq; one that ran them since
has a plain column its trigger keeps, and that trigger. From here every database has the second:
the column's generation expression is dropped (the catalogue alone: nothing is rewritten, and
the values stay), and the triggers are made where they are missing. Nothing changes on SQLite.
"""
from typing import Sequence, Union

from alembic import op
from sqlalchemy import text

from accord.migrations import online

revision: str = '0034'
down_revision: Union[str, None] = '0033'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Both shapes serve the code of 0033: it never writes the vector, and it gives entries steps.
serves_previous_release = True

DISPUTE_TEXT = (
    "NEW.number || ' ' || NEW.claimant_id || ' ' || NEW.respondent_ids::text || ' ' ||"
    " NEW.summary || ' ' || NEW.facts"
)
# As 0007 makes them.
VECTOR = f"""
CREATE OR REPLACE FUNCTION dispute_search_tsv() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_tsv := to_tsvector('english', {DISPUTE_TEXT});
    RETURN NEW;
END $$
"""
VECTOR_TRIGGER = (
    "CREATE TRIGGER dispute_search_tsv BEFORE INSERT OR UPDATE OF number, claimant_id,"
    " respondent_ids, summary, facts ON dispute"
    " FOR EACH ROW EXECUTE FUNCTION dispute_search_tsv()"
)
# As 0016 makes them.
STEP = """CREATE OR REPLACE FUNCTION dispute_event_step() RETURNS trigger AS $$
       BEGIN NEW.step := NEW.seq; RETURN NEW; END; $$ LANGUAGE plpgsql"""
STEP_TRIGGER = """CREATE TRIGGER dispute_event_step BEFORE INSERT ON dispute_event
       FOR EACH ROW WHEN (NEW.step IS NULL AND NEW.action <> 'audit_gap')
       EXECUTE FUNCTION dispute_event_step()"""


def upgrade() -> None:
    if not online.postgres():
        return
    bind = op.get_bind()
    generated = bind.execute(
        text(
            "SELECT attgenerated FROM pg_attribute"
            " WHERE attrelid = 'dispute'::regclass AND attname = 'search_tsv'"
        )
    ).scalar()
    if generated == 's':
        op.execute("ALTER TABLE dispute ALTER COLUMN search_tsv DROP EXPRESSION")
    for function, trigger, name, table in (
        (VECTOR, VECTOR_TRIGGER, 'dispute_search_tsv', 'dispute'),
        (STEP, STEP_TRIGGER, 'dispute_event_step', 'dispute_event'),
    ):
        op.execute(function)
        present = bind.execute(
            text("SELECT 1 FROM pg_trigger WHERE tgname = :n AND NOT tgisinternal"), {"n": name}
        ).scalar()
        if not present:
            op.execute(trigger)


def downgrade() -> None:
    """Nothing to undo: this is the shape 0007 and 0016 make."""
