"""baselines, actors and monitoring ledger: approved workload baselines, who made each
change the agent saw, and the ledger entries that chain the agent's rows

Revision ID: 0007
Revises: 0006

Adds `baselines` (approvals and revocations, each naming its ledger entry); adds to
`agent_transitions` the actor of the change (user, verb, time, source IP, audit ID) and
`ledger_seq`, and to `agent_heartbeats` `ledger_seq`. Rows written before stay unchained
(their `ledger_seq` is NULL).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

NAME = 253


def upgrade() -> None:
    op.create_table(
        "baselines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ledger_seq", sa.Integer(), nullable=False),
        sa.Column("cluster", sa.String(length=NAME), nullable=False),
        sa.Column("kind", sa.String(length=NAME), nullable=False),
        sa.Column("namespace", sa.String(length=NAME), nullable=False),
        sa.Column("name", sa.String(length=NAME), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=True),
        sa.Column("decided_by", sa.String(length=NAME), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ticket", sa.String(length=NAME), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ledger_seq"], ["ledger.seq"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_baselines_subject", "baselines", ["cluster", "kind", "namespace", "name"])
    op.create_index(op.f("ix_baselines_ledger_seq"), "baselines", ["ledger_seq"])
    with op.batch_alter_table("agent_transitions") as batch:
        batch.add_column(sa.Column("actor_user", sa.Text(), nullable=True))
        batch.add_column(sa.Column("actor_verb", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("actor_time", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("actor_source_ip", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("actor_audit_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("ledger_seq", sa.Integer(), nullable=True))
        batch.create_index(op.f("ix_agent_transitions_ledger_seq"), ["ledger_seq"])
    with op.batch_alter_table("agent_heartbeats") as batch:
        batch.add_column(sa.Column("ledger_seq", sa.Integer(), nullable=True))
        batch.create_index(op.f("ix_agent_heartbeats_ledger_seq"), ["ledger_seq"])


def downgrade() -> None:
    with op.batch_alter_table("agent_heartbeats") as batch:
        batch.drop_index(op.f("ix_agent_heartbeats_ledger_seq"))
        batch.drop_column("ledger_seq")
    with op.batch_alter_table("agent_transitions") as batch:
        batch.drop_index(op.f("ix_agent_transitions_ledger_seq"))
        for column in (
            "ledger_seq",
            "actor_audit_id",
            "actor_source_ip",
            "actor_time",
            "actor_verb",
            "actor_user",
        ):
            batch.drop_column(column)
    op.drop_index(op.f("ix_baselines_ledger_seq"), table_name="baselines")
    op.drop_index("ix_baselines_subject", table_name="baselines")
    op.drop_table("baselines")
