"""Approved baselines in the evidence store: approve, revoke, list, show, and the ones a
scan or the agent compares workloads with.

Rows are written once. Approving records each workload's security spec
(inventory/security_spec.py); revoking adds a row without one. The newest row of a
workload says what holds now. Every decision (one command, one or many workloads) is one
ledger entry, written in the same transaction, so `kubeproof evidence verify` covers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kubeproof.inventory import Workload
from kubeproof.inventory.security_spec import (
    ApprovedBaseline,
    ApprovedBaselines,
    WorkloadKey,
    security_spec,
    spec_digest,
)
from kubeproof.redaction import redact
from kubeproof.store import ledger
from kubeproof.store.db import Store
from kubeproof.store.monitoring import chain_baselines
from kubeproof.store.schema import BaselineRow

APPROVED, REVOKED = "approved", "revoked"


class BaselineError(ValueError):
    """A decision that cannot be recorded; the message names the flag or subject."""


@dataclass(frozen=True)
class Decision:
    ids: list[int]
    ledger_seq: int
    ledger_hash: str


@dataclass(frozen=True)
class Decider:
    by: str
    reason: str
    ticket: str | None = None

    def values(self) -> dict[str, Any]:
        if not self.by.strip() or not self.reason.strip():
            raise BaselineError("--by and --reason are required and must not be empty")
        # Written by people, stored forever: a pasted credential must not be among them.
        ticket = self.ticket.strip() if self.ticket else ""
        return {
            "decided_by": redact(self.by.strip()),
            "reason": redact(self.reason.strip()),
            "ticket": redact(ticket) if ticket else None,
        }


def display_id(baseline_id: int) -> str:
    return f"BL-{baseline_id}"


def approve(
    store: Store, cluster: str, workloads: Sequence[Workload], decider: Decider, *, now: datetime
) -> Decision:
    if not workloads:
        raise BaselineError("no workload to approve")
    decided = decider.values()
    at = ledger.utc(now)
    values = []
    for workload in workloads:
        subject = workload.subject
        spec = security_spec(workload)
        values.append(
            {
                "cluster": cluster,
                "kind": subject.kind,
                "namespace": subject.namespace or "",
                "name": subject.name,
                "action": APPROVED,
                "digest": spec_digest(spec),
                "spec": spec,
                **decided,
                "decided_at": at,
            }
        )
    return _write(store, values, at)


def revoke(
    store: Store,
    cluster: str,
    keys: Sequence[WorkloadKey],
    decider: Decider,
    *,
    now: datetime,
    namespace: str | None = None,
) -> Decision:
    """Revoke the baselines of `keys`, or of every workload of `namespace` that has one
    in force. Naming a workload without one is an error (nothing is written)."""
    decided = decider.values()
    at = ledger.utc(now)
    with store.writing() as session:
        in_force = {
            (r.kind, r.namespace, r.name)
            for r in _current_rows(session, cluster)
            if r.action == APPROVED
        }
        chosen = list(keys)
        if namespace is not None:
            chosen += sorted(k for k in in_force if k[1] == namespace)
        missing = [k for k in chosen if k not in in_force]
        if missing:
            raise BaselineError(f"no approved baseline in force for {_key_text(missing[0])}")
        if not chosen:
            raise BaselineError(f"no approved baseline in force in namespace {namespace}")
        values = [
            {
                "cluster": cluster,
                "kind": kind,
                "namespace": ns,
                "name": name,
                "action": REVOKED,
                "digest": None,
                "spec": None,
                **decided,
                "decided_at": at,
            }
            for kind, ns, name in dict.fromkeys(chosen)
        ]
        entry, rows = chain_baselines(session, values, at)
        return Decision([r.id for r in rows], entry.seq, entry.entry_hash)


def _write(store: Store, values: list[dict[str, Any]], at: datetime) -> Decision:
    with store.writing() as session:
        entry, rows = chain_baselines(session, values, at)
        return Decision([r.id for r in rows], entry.seq, entry.entry_hash)


def _key_text(key: WorkloadKey) -> str:
    kind, namespace, name = key
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def _current_rows(session: Session, cluster: str | None) -> list[BaselineRow]:
    """The newest row of each workload."""
    newest = select(func.max(BaselineRow.id)).group_by(
        BaselineRow.cluster, BaselineRow.kind, BaselineRow.namespace, BaselineRow.name
    )
    if cluster is not None:
        newest = newest.where(BaselineRow.cluster == cluster)
    return list(session.scalars(select(BaselineRow).where(BaselineRow.id.in_(newest))))


def current_baselines(
    session: Session, cluster: str | None = None, *, every: bool = False
) -> list[BaselineRow]:
    """The newest row of each workload (of one cluster), approved ones only unless `every`."""
    rows = sorted(
        _current_rows(session, cluster),
        key=lambda r: (r.cluster, r.namespace, r.kind, r.name),
    )
    return [r for r in rows if every or r.action == APPROVED]


def subject_rows(session: Session, key: WorkloadKey, cluster: str | None) -> list[BaselineRow]:
    """Every decision about one workload, oldest first."""
    kind, namespace, name = key
    statement = select(BaselineRow).where(
        BaselineRow.kind == kind, BaselineRow.namespace == namespace, BaselineRow.name == name
    )
    if cluster is not None:
        statement = statement.where(BaselineRow.cluster == cluster)
    return list(session.scalars(statement.order_by(BaselineRow.id)))


def approved_baselines(session: Session, cluster: str) -> ApprovedBaselines:
    """What a scan or the agent compares the workloads of `cluster` with."""
    by_workload: dict[WorkloadKey, ApprovedBaseline] = {}
    for row in current_baselines(session, cluster):
        if not isinstance(row.spec, dict) or not row.digest:
            # Edited behind kubeproof's back: fail loudly rather than compare with nothing.
            raise BaselineError(
                f"baseline {display_id(row.id)} has no spec: run kubeproof evidence verify"
            )
        by_workload[(row.kind, row.namespace, row.name)] = ApprovedBaseline(
            row.id, row.spec, row.digest, row.decided_by, ledger.utc(row.decided_at)
        )
    namespaces = frozenset(key[1] for key in by_workload if key[1])
    return ApprovedBaselines(by_workload, namespaces)


def load_approved(store: Store, cluster: str) -> ApprovedBaselines:
    with store.reading() as session:
        return approved_baselines(session, cluster)


def baseline_version(store: Store, cluster: str) -> int:
    """The newest decision's id for `cluster` (0 when none): when it moves, the baselines
    in force have changed."""
    with store.reading() as session:
        newest = session.scalar(
            select(func.max(BaselineRow.id)).where(BaselineRow.cluster == cluster)
        )
        return int(newest or 0)


def row_dict(row: BaselineRow, *, with_spec: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": display_id(row.id),
        "cluster": row.cluster,
        "subject": _key_text((row.kind, row.namespace, row.name)),
        "action": row.action,
        "digest": row.digest,
        "decidedBy": row.decided_by,
        "decidedAt": ledger.canonical_time(row.decided_at),
        "reason": row.reason,
        "ticket": row.ticket,
        "ledgerEntry": row.ledger_seq,
    }
    if with_spec:
        data["spec"] = row.spec
    return data
