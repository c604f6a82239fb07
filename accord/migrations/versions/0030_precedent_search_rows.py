"""precedent search reads its candidates from a narrow index on SQLite

Revision ID: 0030
Revises: 0028
Create Date: 2026-12-05 00:45:00

A precedent search counts the facets of its newest 1,000 matches and tests its filters on them,
and a common phrase first finds the 3,000th newest precedent. On SQLite each of those read a
whole precedent row (about 2 KB with its texts: two rows a page, so 1,000 candidates visited
500-1,000 pages and the 3,000th newest 1,500). This index holds, by id, only what those reads
need (the facet lines and the filtered columns, about 150 bytes), so the same reads visit a few
dozen pages. PostgreSQL reads each candidate's heap row for its text vector anyway: nothing.
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0030'
down_revision: Union[str, None] = '0028'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute(
            "CREATE INDEX ix_precedent_search_rows ON precedent (id, facet_values, category,"
            " outcome, claimant_tier, claimant_region, decided_at)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute("DROP INDEX IF EXISTS ix_precedent_search_rows")
