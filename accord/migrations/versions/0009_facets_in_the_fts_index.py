"""facet lines in the SQLite full-text index

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 09:20:00

The facet lines also name the single-valued facets (category, outcome, tier, region), and on
SQLite the precedent FTS5 index also holds each precedent's facet lines, so a search
narrowed by a facet intersects it inside the index rather than reading every matching
precedent's row to test it (a common word narrowed by a facet read ~7,000 rows per query at a
million precedents). PostgreSQL is unchanged.
"""
from typing import Sequence, Union

from alembic import op

from accord.migrations import online

revision: str = '0009'
down_revision: Union[str, None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

COLUMNS = {
    'old': ('search_text', 'public_text'),
    'new': ('search_text', 'public_text', 'facet_values'),
}


def _index(columns: tuple[str, ...]) -> None:
    names = ', '.join(columns)
    new = ', '.join(f'new.{c}' for c in columns)
    old = ', '.join(f'old.{c}' for c in columns)
    op.execute(
        f"CREATE VIRTUAL TABLE precedent_fts USING fts5({names},"
        " content='precedent', content_rowid='id', tokenize='porter unicode61')"
    )
    op.execute(
        "CREATE TRIGGER precedent_fts_insert AFTER INSERT ON precedent BEGIN"
        f" INSERT INTO precedent_fts(rowid, {names}) VALUES (new.id, {new}); END"
    )
    op.execute(
        "CREATE TRIGGER precedent_fts_delete AFTER DELETE ON precedent BEGIN"
        f" INSERT INTO precedent_fts(precedent_fts, rowid, {names})"
        f" VALUES ('delete', old.id, {old}); END"
    )
    op.execute(
        "CREATE TRIGGER precedent_fts_update AFTER UPDATE ON precedent BEGIN"
        f" INSERT INTO precedent_fts(precedent_fts, rowid, {names})"
        f" VALUES ('delete', old.id, {old});"
        f" INSERT INTO precedent_fts(rowid, {names}) VALUES (new.id, {new}); END"
    )
    op.execute("INSERT INTO precedent_fts(precedent_fts) VALUES ('rebuild')")


def _drop() -> None:
    for trigger in ('insert', 'delete', 'update'):
        op.execute(f"DROP TRIGGER IF EXISTS precedent_fts_{trigger}")
    op.execute("DROP TABLE IF EXISTS precedent_fts")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    newline = 'char(10)' if sqlite else 'chr(10)'
    added = (
        f"UPDATE precedent SET facet_values = facet_values || {newline} || 'category=' || category"
        f" || {newline} || 'outcome=' || outcome || {newline} || 'tier=' || claimant_tier"
        f" || {newline} || 'region=' || claimant_region"
    )
    if sqlite:
        op.execute(added)
    else:
        # In batches (online.py), each precedent once: run again, one that has its lines
        # already is left alone.
        online.in_batches(
            f"{added} WHERE id > :low AND id <= :high"
            " AND facet_values !~ ('(^|' || chr(10) || ')category=')",
            table='precedent',
            key='id',
            below=0,
        )
    if sqlite:
        _drop()
        _index(COLUMNS['new'])


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        _drop()
        _index(COLUMNS['old'])
