"""dispute texts: the bodies of notes, emails, questions and answers, out of the workflow history

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 16:40:00

The workflow carries a text's id and sha256; the body lives here. Disputes already running
keep their texts inline in their history and audit entries; nothing to copy.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0019'
down_revision: Union[str, None] = '0018'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('dispute_text',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('dispute_number', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('author', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['dispute_number'], ['dispute.number'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_dispute_text_dispute_number'), 'dispute_text', ['dispute_number'], unique=False)
    op.create_index(op.f('ix_dispute_text_author'), 'dispute_text', ['author'], unique=False)
    dialect = op.get_bind().dialect.name
    for statement in APPEND_ONLY_POSTGRES if dialect == "postgresql" else APPEND_ONLY_SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS dispute_text_append_only ON dispute_text")
        op.execute("DROP FUNCTION IF EXISTS dispute_text_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS dispute_text_no_update")
        op.execute("DROP TRIGGER IF EXISTS dispute_text_no_delete")
    op.drop_index(op.f('ix_dispute_text_author'), table_name='dispute_text')
    op.drop_index(op.f('ix_dispute_text_dispute_number'), table_name='dispute_text')
    op.drop_table('dispute_text')


# A stored text is said once: like the audit trail whose entries name it by hash, the database
# refuses to change or delete it (the hash in the entry would still show it, after the fact).
APPEND_ONLY_SQLITE = [
    """CREATE TRIGGER dispute_text_no_update BEFORE UPDATE ON dispute_text
       BEGIN SELECT RAISE(ABORT, 'dispute_text is append-only'); END""",
    """CREATE TRIGGER dispute_text_no_delete BEFORE DELETE ON dispute_text
       BEGIN SELECT RAISE(ABORT, 'dispute_text is append-only'); END""",
]
APPEND_ONLY_POSTGRES = [
    """CREATE FUNCTION dispute_text_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'dispute_text is append-only'; END; $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER dispute_text_append_only BEFORE UPDATE OR DELETE ON dispute_text
       FOR EACH ROW EXECUTE FUNCTION dispute_text_append_only()""",
]
