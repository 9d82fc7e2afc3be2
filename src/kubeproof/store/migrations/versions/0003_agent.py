"""agent: drift transitions and heartbeats of `kubeproof agent`

Revision ID: 0003
Revises: 0002

Adds `agent_transitions` and `agent_heartbeats`; no existing table changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "agent_transitions",
        _id(),
        sa.Column("cluster", sa.String(length=253), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("transition", sa.String(length=10), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("check_id", sa.String(length=100), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=253), nullable=False),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("container", sa.String(length=253), nullable=False),
        sa.Column("status_before", sa.String(length=20), nullable=True),
        sa.Column("status_after", sa.String(length=20), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("diff", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_agent_transitions_cluster_observed",
        "agent_transitions",
        ["cluster", "observed_at"],
    )
    op.create_index(op.f("ix_agent_transitions_fingerprint"), "agent_transitions", ["fingerprint"])
    op.create_table(
        "agent_heartbeats",
        _id(),
        sa.Column("cluster", sa.String(length=253), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("interval_s", sa.Integer(), nullable=False),
        sa.Column("counters", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_agent_heartbeats_cluster_at", "agent_heartbeats", ["cluster", "at"])


def downgrade() -> None:
    op.drop_index("ix_agent_heartbeats_cluster_at", table_name="agent_heartbeats")
    op.drop_table("agent_heartbeats")
    op.drop_index(op.f("ix_agent_transitions_fingerprint"), table_name="agent_transitions")
    op.drop_index("ix_agent_transitions_cluster_observed", table_name="agent_transitions")
    op.drop_table("agent_transitions")
