"""detections: audit detections and Falco alerts as evidence, and audit receivers' heartbeats

Revision ID: 0008
Revises: 0007

Adds `detections` (one row per detection `kubeproof audit` printed, unique per cluster,
detector and evidence key; each names the `detections` ledger entry that chains it) and
`agent_heartbeats.component` (`agent` for every row written before, `audit` for an audit
receiver's heartbeats).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

NAME = 253


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "detections",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ledger_seq", sa.Integer(), nullable=False),
        sa.Column("cluster", sa.String(length=NAME), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("detector_id", sa.String(length=100), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.Column("api_version", sa.String(length=NAME), nullable=False),
        sa.Column("kind", sa.String(length=NAME), nullable=False),
        sa.Column("namespace", sa.String(length=NAME), nullable=False),
        sa.Column("name", sa.String(length=NAME), nullable=False),
        sa.Column("container", sa.String(length=NAME), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("evidence_key", sa.String(length=NAME), nullable=False),
        sa.Column("observed_at", _time(), nullable=False),
        sa.Column("received_at", _time(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["ledger_seq"], ["ledger.seq"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cluster", "detector_id", "evidence_key"),
    )
    op.create_index(op.f("ix_detections_ledger_seq"), "detections", ["ledger_seq"])
    op.create_index("ix_detections_cluster_observed", "detections", ["cluster", "observed_at"])
    with op.batch_alter_table("agent_heartbeats") as batch:
        batch.add_column(
            sa.Column("component", sa.String(length=10), server_default="agent", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("agent_heartbeats") as batch:
        batch.drop_column("component")
    op.drop_index("ix_detections_cluster_observed", table_name="detections")
    op.drop_index(op.f("ix_detections_ledger_seq"), table_name="detections")
    op.drop_table("detections")
