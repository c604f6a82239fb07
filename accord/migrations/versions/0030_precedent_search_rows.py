"""precedent search reads narrow rows: an index of them (SQLite), vectors in the row (PostgreSQL)

Revision ID: 0030
Revises: 0028
Create Date: 2026-12-05 00:45:00

A precedent search counts the facets of its newest 1,000 matches and tests its filters on them,
and a common phrase first finds the 3,000th newest precedent. On SQLite each of those read a
whole precedent row (about 2 KB with its texts: two rows a page, so 1,000 candidates visited
500-1,000 pages and the 3,000th newest 1,500). This index holds, by id, only what those reads
need (the facet lines and the filtered columns, about 150 bytes), so the same reads visit a few
dozen pages.

PostgreSQL tests and ranks each candidate by its text vector, read from its heap row. The two
vectors are a row's largest values (about 900 bytes each, compressed), so they were the ones
moved out of line: every candidate cost two TOAST fetches (test, then rank), about 6 buffers, a
common word's 1,000 candidates 6,300 buffers and 9 ms at 6,000 precedents. Stored MAIN, the
vectors stay in the row (the texts go out of line instead: a page of hits reads 20 of them):
300 buffers, 1.5 ms. The table is rewritten (CLUSTER by id, the order searches walk) so existing
rows move their vectors back in; it holds the table's lock while it runs.
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
        return
    op.execute(
        "ALTER TABLE precedent ALTER COLUMN search_tsv SET STORAGE MAIN,"
        " ALTER COLUMN public_tsv SET STORAGE MAIN"
    )
    op.execute("CLUSTER precedent USING precedent_pkey")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute("DROP INDEX IF EXISTS ix_precedent_search_rows")
        return
    op.execute(
        "ALTER TABLE precedent ALTER COLUMN search_tsv SET STORAGE EXTENDED,"
        " ALTER COLUMN public_tsv SET STORAGE EXTENDED"
    )
