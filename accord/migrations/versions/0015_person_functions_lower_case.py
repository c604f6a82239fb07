"""person functions stored as imports now store them: trimmed and lower-case

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 15:10:00

Screening and the panel draw compare a person's function with the playbook's ('sales',
'finance', 'chair'); a row imported before imports normalised it ('Finance') never matched, so
that board member never sat and a 'Sales' mediator escaped the direct-sales bar. Emails are left
as they are: lower-casing them could merge two rows that differ only in case.
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0015'
down_revision: Union[str, None] = '0014'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.execute(
        "UPDATE person SET function = lower(trim(function))"
        " WHERE function IS NOT NULL AND function <> lower(trim(function))"
    )


def downgrade() -> None:
    """Nothing to undo: the schema is unchanged, and lower-case functions are what revision
    0014 expects as well (its imports already store them so). The old spellings are not kept,
    so they cannot be restored; no code reads them."""
