"""ledger signatures and subject identity: Ed25519 signatures on ledger entries, and the
Kubernetes UID and labels of each subject

Revision ID: 0005
Revises: 0004

Adds `ledger.signature` and `ledger.key_id` (entries recorded with a signing key; older
entries stay unsigned and verify as before) and `subjects.uid` and `subjects.labels` (filled
by the next scan that reads the subject from a cluster). Only new nullable columns: an
existing store upgrades without rewriting a row.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger") as ledger:
        ledger.add_column(sa.Column("signature", sa.String(length=128), nullable=True))
        ledger.add_column(sa.Column("key_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("subjects") as subjects:
        subjects.add_column(sa.Column("uid", sa.String(length=253), nullable=True))
        subjects.add_column(sa.Column("labels", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subjects") as subjects:
        subjects.drop_column("labels")
        subjects.drop_column("uid")
    with op.batch_alter_table("ledger") as ledger:
        ledger.drop_column("key_id")
        ledger.drop_column("signature")
