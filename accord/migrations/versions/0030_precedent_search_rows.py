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
300 buffers, 1.5 ms. Existing rows are written again, in batches by id, so that their vectors
move back in (a stored generated column is computed again on every update). This was a CLUSTER,
which also laid the rows out by id but held the table's strongest lock while it ran: no
precedent could be read or written for the whole rewrite. Rows written again in id order land in
nearly that order anyway.
"""
from typing import Sequence, Union

from alembic import op

from accord.migrations import online

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
    online.in_batches(
        "UPDATE precedent SET id = id WHERE id > :low AND id <= :high",
        table='precedent',
        key='id',
        below=0,
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute("DROP INDEX IF EXISTS ix_precedent_search_rows")
        return
    op.execute(
        "ALTER TABLE precedent ALTER COLUMN search_tsv SET STORAGE EXTENDED,"
        " ALTER COLUMN public_tsv SET STORAGE EXTENDED"
    )
