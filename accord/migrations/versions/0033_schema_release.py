"""the releases whose code the schema serves, for readiness during a rolling upgrade

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07 10:00:00

/ready used to accept only the schema its own release migrates to, so `accord migrate` for the
next release took every process of the running one out of the load balancer until the new ones
came up. schema_release lists the releases whose code the schema serves (kept by env.py's
on_version_apply, from each migration's serves_previous_release); a process is ready while its
release is listed.
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0033'
down_revision: Union[str, None] = '0032'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# A new table that 0032's code never reads.
serves_previous_release = True


def upgrade() -> None:
    op.create_table(
        'schema_release',
        sa.Column('revision', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.PrimaryKeyConstraint('revision'),
    )


def downgrade() -> None:
    op.drop_table('schema_release')
