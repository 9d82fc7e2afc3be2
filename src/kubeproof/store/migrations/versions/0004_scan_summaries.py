"""scan summaries: per-scan counts the period report reads instead of every result

Revision ID: 0004
Revises: 0003

Adds `scan_check_counts` (results per scan, check, status and, for not_evaluated, reason)
and `scan_subject_counts` (results per scan and subject, counted by status), and fills
them from the results already stored, so an existing store reports the same as before.
Derived data: the ledger does not cover them, and no existing table changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The results columns the backfill reads, as they were at this revision.
_RESULTS = sa.table(
    "results",
    sa.column("scan_id", sa.Integer),
    sa.column("check_id", sa.String),
    sa.column("status", sa.String),
    sa.column("reason", sa.Text),
    sa.column("kind", sa.String),
    sa.column("namespace", sa.String),
    sa.column("name", sa.String),
)

_SUBJECT_COUNT_COLUMNS = (
    "scan_id",
    "kind",
    "namespace",
    "name",
    "results",
    "fail",
    "not_evaluated",
    "excepted",
)


def _count_of(status: str) -> sa.ColumnElement[int]:
    return sa.func.sum(sa.case((_RESULTS.c.status == status, 1), else_=0))


def upgrade() -> None:
    check_counts = op.create_table(
        "scan_check_counts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column("check_id", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("results", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["scan_id"], ["scans.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_scan_check_counts_scan_id"), "scan_check_counts", ["scan_id"])
    subject_counts = op.create_table(
        "scan_subject_counts",
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=253), nullable=False),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("results", sa.Integer(), nullable=False),
        sa.Column("fail", sa.Integer(), nullable=False),
        sa.Column("not_evaluated", sa.Integer(), nullable=False),
        sa.Column("excepted", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["scan_id"], ["scans.id"]),
        sa.PrimaryKeyConstraint("scan_id", "kind", "namespace", "name"),
    )
    assert check_counts is not None and subject_counts is not None
    _backfill(check_counts, subject_counts)


def _backfill(check_counts: sa.Table, subject_counts: sa.Table) -> None:
    """One GROUP BY over every stored result per table. SQLite sorts to group: a larger
    page cache keeps a year's sort in memory (temp_store cannot change in a transaction)."""
    results = _RESULTS.c
    if op.get_context().dialect.name == "sqlite":
        op.execute("PRAGMA cache_size = -262144")  # KiB: 256 MiB
    reason = sa.case((results.status == "not_evaluated", results.reason), else_=None)
    by_check = sa.select(
        results.scan_id, results.check_id, results.status, reason, sa.func.count()
    ).group_by(results.scan_id, results.check_id, results.status, reason)
    op.execute(
        check_counts.insert().from_select(
            ["scan_id", "check_id", "status", "reason", "results"], by_check
        )
    )
    by_subject = sa.select(
        results.scan_id,
        results.kind,
        results.namespace,
        results.name,
        sa.func.count(),
        _count_of("fail"),
        _count_of("not_evaluated"),
        _count_of("excepted"),
    ).group_by(results.scan_id, results.kind, results.namespace, results.name)
    op.execute(subject_counts.insert().from_select(_SUBJECT_COUNT_COLUMNS, by_subject))
    if op.get_context().dialect.name == "sqlite":
        op.execute("PRAGMA cache_size = -2000")  # SQLite's default again for this connection


def downgrade() -> None:
    op.drop_table("scan_subject_counts")
    op.drop_index(op.f("ix_scan_check_counts_scan_id"), table_name="scan_check_counts")
    op.drop_table("scan_check_counts")
