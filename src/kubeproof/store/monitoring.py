"""Monitoring evidence in the ledger: approved baselines (and their revocations) and the
agent's transitions and heartbeats.

Each of these rows names the ledger entry that chains it (`ledger_seq`). One entry covers
one decision (`kubeproof baseline approve` of a namespace writes one row per workload) or
one batch the agent wrote together; its content is the count and a digest over the
canonical form of every row it covers, ids included, so that editing, adding, deleting
or moving a row to another entry breaks the chain. Rows written before revision 0007
have no entry; a row without one written after the first chained row was added behind
kubeproof's back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from kubeproof.store import ledger
from kubeproof.store.schema import (
    AgentHeartbeatRow,
    AgentTransitionRow,
    BaselineRow,
    LedgerEntryRow,
    table_of,
)

# A baseline's id is assigned after its entry is written, so it is left out.
BASELINE_FIELDS = (
    "cluster",
    "kind",
    "namespace",
    "name",
    "action",
    "digest",
    "spec",
    "decided_by",
    "reason",
    "ticket",
    "decided_at",
)
# A transition's or heartbeat's id is covered: it orders the agent's rows.
TRANSITION_FIELDS = (
    "id",
    "cluster",
    "run_id",
    "observed_at",
    "recorded_at",
    "transition",
    "fingerprint",
    "check_id",
    "severity",
    "kind",
    "namespace",
    "name",
    "container",
    "status_before",
    "status_after",
    "message",
    "cause",
    "diff",
    "actor_user",
    "actor_verb",
    "actor_time",
    "actor_source_ip",
    "actor_audit_id",
)
HEARTBEAT_FIELDS = ("id", "cluster", "run_id", "at", "state", "interval_s", "counters")
_MODELS: tuple[tuple[type[AgentTransitionRow | AgentHeartbeatRow], Sequence[str]], ...] = (
    (AgentTransitionRow, TRANSITION_FIELDS),
    (AgentHeartbeatRow, HEARTBEAT_FIELDS),
)


def rows_digest(rows: Sequence[Any], fields: Sequence[str]) -> str:
    """SHA-256 over each row's canonical JSON array (rows or value dicts), lines sorted."""
    lines = sorted(ledger.canonical_json([_value(row, name) for name in fields]) for row in rows)
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line)
        digest.update(b"\n")
    return digest.hexdigest()


def _value(row: Any, name: str) -> Any:
    value = row[name] if isinstance(row, Mapping) else getattr(row, name)
    return ledger.canonical_time(value) if isinstance(value, datetime) else value


def baseline_content(rows: Sequence[Any]) -> dict[str, Any]:
    return {"baselines": len(rows), "digest": rows_digest(rows, BASELINE_FIELDS)}


def monitoring_content(
    transitions: Sequence[AgentTransitionRow], heartbeats: Sequence[AgentHeartbeatRow]
) -> dict[str, Any]:
    return {
        "transitions": len(transitions),
        "transitions_digest": rows_digest(transitions, TRANSITION_FIELDS),
        "heartbeats": len(heartbeats),
        "heartbeats_digest": rows_digest(heartbeats, HEARTBEAT_FIELDS),
    }


def chain_baselines(
    session: Session, values: Sequence[dict[str, Any]], at: datetime
) -> tuple[LedgerEntryRow, list[BaselineRow]]:
    """Append the ledger entry for one decision, then its rows, which name the entry."""
    head = ledger.lock_head(session)  # first: entries are appended one at a time
    entry = ledger.append(session, head, ledger.BASELINE_ENTRY, baseline_content(values), at)
    rows = [BaselineRow(**v, ledger_seq=entry.seq) for v in values]
    session.add_all(rows)
    session.flush()
    return entry, rows


def write_monitoring(
    session: Session,
    transitions: Sequence[dict[str, Any]],
    heartbeats: Sequence[dict[str, Any]],
    at: datetime,
) -> LedgerEntryRow:
    """Insert the agent's waiting rows and the ledger entry that chains them, in the
    caller's transaction."""
    head = ledger.lock_head(session)  # first: entries are appended one at a time
    seq = head.seq + 1
    if transitions:
        session.execute(
            insert(table_of(AgentTransitionRow)), [{**r, "ledger_seq": seq} for r in transitions]
        )
    if heartbeats:
        session.execute(
            insert(table_of(AgentHeartbeatRow)), [{**r, "ledger_seq": seq} for r in heartbeats]
        )
    content = monitoring_content(*_monitoring_rows(session, seq))
    entry = ledger.append(session, head, ledger.MONITORING_ENTRY, content, at)
    assert entry.seq == seq
    return entry


def _monitoring_rows(
    session: Session, seq: int
) -> tuple[list[AgentTransitionRow], list[AgentHeartbeatRow]]:
    transitions = session.scalars(
        select(AgentTransitionRow).where(AgentTransitionRow.ledger_seq == seq)
    ).all()
    heartbeats = session.scalars(
        select(AgentHeartbeatRow).where(AgentHeartbeatRow.ledger_seq == seq)
    ).all()
    return list(transitions), list(heartbeats)


def chained_content(session: Session, entry: LedgerEntryRow) -> dict[str, Any] | str:
    """A baseline or monitoring entry's content recomputed from the rows as they are."""
    if entry.entry_type == ledger.BASELINE_ENTRY:
        rows = session.scalars(select(BaselineRow).where(BaselineRow.ledger_seq == entry.seq))
        found = list(rows)
        if not found:
            return "the baselines it covers were deleted"
        return baseline_content(found)
    transitions, heartbeats = _monitoring_rows(session, entry.seq)
    if not transitions and not heartbeats:
        return "the transitions and heartbeats it covers were deleted"
    return monitoring_content(transitions, heartbeats)


def unchained_rows(session: Session) -> str | None:
    """A transition or heartbeat with no ledger entry, written after chaining began; or
    one that names an entry of another kind."""
    for model, _fields in _MODELS:
        label = "transition" if model is AgentTransitionRow else "heartbeat"
        first_chained = session.scalar(
            select(func.min(model.id)).where(model.ledger_seq.is_not(None))
        )
        if first_chained is not None:
            stray = session.scalar(
                select(func.min(model.id)).where(
                    model.ledger_seq.is_(None), model.id > first_chained
                )
            )
            if stray is not None:
                return f"agent {label} #{stray} has no ledger entry: it was added afterwards"
        # An audit receiver's heartbeats are chained by its detections entries.
        chains = [ledger.MONITORING_ENTRY]
        if model is AgentHeartbeatRow:
            chains.append(ledger.DETECTIONS_ENTRY)
        misplaced = session.scalar(
            select(func.min(model.id))
            .join(LedgerEntryRow, LedgerEntryRow.seq == model.ledger_seq)
            .where(LedgerEntryRow.entry_type.not_in(chains))
        )
        if misplaced is not None:
            return (
                f"agent {label} #{misplaced} names a ledger entry that is not monitoring evidence"
            )
        dangling = session.scalar(
            select(func.min(model.id))
            .outerjoin(LedgerEntryRow, LedgerEntryRow.seq == model.ledger_seq)
            .where(model.ledger_seq.is_not(None), LedgerEntryRow.seq.is_(None))
        )
        if dangling is not None:
            return f"agent {label} #{dangling} names a ledger entry that does not exist"
    misplaced = session.scalar(
        select(func.min(BaselineRow.id))
        .join(LedgerEntryRow, LedgerEntryRow.seq == BaselineRow.ledger_seq)
        .where(LedgerEntryRow.entry_type != ledger.BASELINE_ENTRY)
    )
    if misplaced is not None:
        return f"baseline BL-{misplaced} names a ledger entry that is not a baseline decision"
    return None
