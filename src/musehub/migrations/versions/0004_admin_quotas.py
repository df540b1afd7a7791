"""Administration: a user can be disabled (its tokens stop working at once); users and
repositories can carry their own storage quota (NULL: the hub's setting).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, never a batch copy: on SQLite a batch recreates the table, and
    # dropping the old one would cascade to the rows that reference it.
    op.add_column(
        "users", sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("users", sa.Column("quota_bytes", sa.BigInteger(), nullable=True))
    op.add_column("repos", sa.Column("quota_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("repos", "quota_bytes")
    op.drop_column("users", "quota_bytes")
    op.drop_column("users", "disabled")
