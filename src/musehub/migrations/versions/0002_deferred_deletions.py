"""The uploads table is the ledger of deferred deletions: named, and its states, for that.

``uploads`` becomes ``deferred_deletions``, ``expires_at`` becomes ``delete_after``, the
never-written ``size`` and ``objects`` columns go, and each state is renamed for what it means
(musehub.protocol.records). A ``done`` row meant two things, told apart by its key: a
committed presigned upload (its key still deleted once its URL expired) is ``scheduled``,
anything else (a pack now in the repository) ``cancelled``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

#: (old, new) state names; "done" is split by key below.
STATES = [
    ("pending", "awaiting_upload"),
    ("committing", "verifying"),
    ("receiving", "storing"),
    ("bundle", "scheduled"),
    ("expired", "deleted"),
]
#: PostgreSQL's own constraint names follow the table's name.
PG_CONSTRAINTS = ["pkey", "repo_id_fkey", "user_id_fkey"]


def _ledger(name: str) -> sa.TableClause:
    return sa.table(name, sa.column("state", sa.String), sa.column("key", sa.String))


def upgrade() -> None:
    op.drop_index("ix_uploads_state_expires", table_name="uploads")
    op.drop_index("ix_uploads_repo_id", table_name="uploads")
    op.rename_table("uploads", "deferred_deletions")
    with op.batch_alter_table("deferred_deletions") as b:
        b.alter_column(
            "expires_at",
            new_column_name="delete_after",
            existing_type=sa.BigInteger(),
            existing_nullable=False,
        )
        b.drop_column("size")
        b.drop_column("objects")
    if op.get_bind().dialect.name == "postgresql":
        for c in PG_CONSTRAINTS:
            op.execute(
                f"ALTER TABLE deferred_deletions RENAME CONSTRAINT uploads_{c} TO "
                f"deferred_deletions_{c}"
            )
    op.create_index("ix_deferred_deletions_repo_id", "deferred_deletions", ["repo_id"])
    op.create_index(
        "ix_deferred_deletions_state_delete_after", "deferred_deletions", ["state", "delete_after"]
    )
    t = _ledger("deferred_deletions")
    for old, new in STATES:
        op.execute(t.update().where(t.c.state == old).values(state=new))
    op.execute(
        t.update().where(t.c.state == "done", t.c.key.like("%/uploads/%")).values(state="scheduled")
    )
    op.execute(t.update().where(t.c.state == "done").values(state="cancelled"))


def downgrade() -> None:
    t = _ledger("deferred_deletions")
    op.execute(
        t.update().where(t.c.state == "scheduled", t.c.key.like("%/uploads/%")).values(state="done")
    )
    op.execute(t.update().where(t.c.state == "cancelled").values(state="done"))
    for old, new in STATES:
        op.execute(t.update().where(t.c.state == new).values(state=old))
    op.drop_index("ix_deferred_deletions_state_delete_after", table_name="deferred_deletions")
    op.drop_index("ix_deferred_deletions_repo_id", table_name="deferred_deletions")
    if op.get_bind().dialect.name == "postgresql":
        for c in PG_CONSTRAINTS:
            op.execute(
                f"ALTER TABLE deferred_deletions RENAME CONSTRAINT deferred_deletions_{c} "
                f"TO uploads_{c}"
            )
    with op.batch_alter_table("deferred_deletions") as b:
        b.alter_column(
            "delete_after",
            new_column_name="expires_at",
            existing_type=sa.BigInteger(),
            existing_nullable=False,
        )
        b.add_column(sa.Column("size", sa.BigInteger(), nullable=True))
        b.add_column(sa.Column("objects", sa.BigInteger(), nullable=True))
    op.rename_table("deferred_deletions", "uploads")
    op.create_index("ix_uploads_repo_id", "uploads", ["repo_id"])
    op.create_index("ix_uploads_state_expires", "uploads", ["state", "expires_at"])
