"""admission decisions: every webhook decision, recorded in batches chained in the ledger

Revision ID: 0006
Revises: 0005

Adds `admission_batches` (decisions the webhook wrote together; each names the ledger
entry that covers it) and `admission_decisions` (one row per decision: request identity,
object identity, image digests, rules judged and the answer; never an object's body).
No existing table changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "admission_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ledger_seq", sa.Integer(), nullable=False),
        sa.Column("cluster", sa.String(length=253), nullable=False),
        sa.Column("webhook", sa.String(length=253), nullable=False),
        sa.Column("recorded_at", _time(), nullable=False),
        sa.Column("first_decided_at", _time(), nullable=False),
        sa.Column("last_decided_at", _time(), nullable=False),
        sa.Column("decisions", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["ledger_seq"], ["ledger.seq"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ledger_seq"),
    )
    op.create_index(
        op.f("ix_admission_batches_cluster"), "admission_batches", ["cluster"], unique=False
    )
    op.create_table(
        "admission_decisions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=253), nullable=False),
        sa.Column("decided_at", _time(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("operation", sa.String(length=20), nullable=False),
        sa.Column("api_group", sa.String(length=253), nullable=False),
        sa.Column("kind", sa.String(length=253), nullable=False),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("owner_kind", sa.String(length=253), nullable=False),
        sa.Column("owner_name", sa.String(length=253), nullable=False),
        sa.Column("images", sa.JSON(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("policy_digest", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["admission_batches.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_admission_decisions_decided_at", "admission_decisions", ["decided_at"], unique=False
    )
    op.create_index(
        op.f("ix_admission_decisions_batch_id"), "admission_decisions", ["batch_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_admission_decisions_batch_id"), table_name="admission_decisions")
    op.drop_index("ix_admission_decisions_decided_at", table_name="admission_decisions")
    op.drop_table("admission_decisions")
    op.drop_index(op.f("ix_admission_batches_cluster"), table_name="admission_batches")
    op.drop_table("admission_batches")
