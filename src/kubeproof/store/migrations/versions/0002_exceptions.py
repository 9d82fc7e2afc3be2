"""exceptions: risk acceptances and their revocations, chained in the ledger

Revision ID: 0002
Revises: 0001

Adds `exceptions` and `exception_revocations`, and on `ledger` the columns that tie an
entry to the exception or revocation it covers.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exceptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("subjects", sa.JSON(), nullable=False),
        sa.Column("namespaces", sa.JSON(), nullable=False),
        sa.Column("selector", sa.JSON(), nullable=True),
        sa.Column("owner", sa.String(length=253), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ticket", sa.String(length=253), nullable=True),
        sa.Column("approver", sa.String(length=253), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("exceptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exceptions_expires_on"), ["expires_on"], unique=False)

    op.create_table(
        "exception_revocations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exception_id", sa.Integer(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_by", sa.String(length=253), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["exception_id"], ["exceptions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("exception_id"),
    )
    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("exception_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("revocation_id", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint("uq_ledger_exception_id", ["exception_id"])
        batch_op.create_unique_constraint("uq_ledger_revocation_id", ["revocation_id"])
        batch_op.create_foreign_key(
            "fk_ledger_exception_id", "exceptions", ["exception_id"], ["id"]
        )
        batch_op.create_foreign_key(
            "fk_ledger_revocation_id", "exception_revocations", ["revocation_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.drop_constraint("fk_ledger_revocation_id", type_="foreignkey")
        batch_op.drop_constraint("fk_ledger_exception_id", type_="foreignkey")
        batch_op.drop_constraint("uq_ledger_revocation_id", type_="unique")
        batch_op.drop_constraint("uq_ledger_exception_id", type_="unique")
        batch_op.drop_column("revocation_id")
        batch_op.drop_column("exception_id")

    op.drop_table("exception_revocations")
    with op.batch_alter_table("exceptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exceptions_expires_on"))

    op.drop_table("exceptions")
