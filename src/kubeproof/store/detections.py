"""Audit detections and Falco alerts as evidence (revision 0008): written in batches, each
batch chained by one `detections` ledger entry, together with the heartbeats the audit
receiver wrote meanwhile (rows of `agent_heartbeats` with component `audit`).

A detection is unique per cluster, detector and evidence key (the first audit ID that
matched, or the Falco alert's key): a batch the API server sends again, or a log read
twice, adds nothing. The entry's content is the count and a digest over every row it
covers, so an edited, added, deleted or re-assigned detection or heartbeat breaks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, tuple_
from sqlalchemy.orm import Session

from kubeproof.store import ledger
from kubeproof.store.monitoring import HEARTBEAT_FIELDS, rows_digest
from kubeproof.store.schema import AgentHeartbeatRow, DetectionRow, LedgerEntryRow, table_of

AUDIT_COMPONENT = "audit"  # agent_heartbeats.component of an audit receiver
# Every field but the row id (assigned after the entry is written) and the entry itself.
DETECTION_FIELDS = (
    "cluster",
    "source",
    "detector_id",
    "severity",
    "criteria",
    "api_version",
    "kind",
    "namespace",
    "name",
    "container",
    "fingerprint",
    "evidence_key",
    "observed_at",
    "received_at",
    "evidence",
    "message",
    "run_id",
)
RECEIVER_HEARTBEAT_FIELDS = (*(f for f in HEARTBEAT_FIELDS if f != "id"), "component")


@dataclass(frozen=True)
class WrittenBatch:
    ledger_seq: int
    ledger_hash: str
    detections: int  # new rows
    duplicates: int  # already stored (or twice in the batch): not written again
    heartbeats: int


def batch_content(detections: Sequence[Any], heartbeats: Sequence[Any]) -> dict[str, Any]:
    return {
        "detections": len(detections),
        "detections_digest": rows_digest(detections, DETECTION_FIELDS),
        "heartbeats": len(heartbeats),
        "heartbeats_digest": rows_digest(heartbeats, RECEIVER_HEARTBEAT_FIELDS),
    }


def write_detections(
    session: Session,
    detections: Sequence[dict[str, Any]],
    heartbeats: Sequence[dict[str, Any]],
    at: datetime,
) -> WrittenBatch | None:
    """Insert the detections not stored yet, the receiver's heartbeats, and the entry that
    chains them, in the caller's transaction; None when there was nothing new to write."""
    head = ledger.lock_head(session)  # first: it also keeps two writers from racing on keys
    new = _not_stored(session, detections)
    beats = [{**h, "component": AUDIT_COMPONENT} for h in heartbeats]
    if not new and not beats:
        return None
    entry = ledger.append(session, head, ledger.DETECTIONS_ENTRY, batch_content(new, beats), at)
    # The rows name their entry, so they follow it (detections.ledger_seq is a foreign key).
    if new:
        session.execute(
            insert(table_of(DetectionRow)), [{**d, "ledger_seq": entry.seq} for d in new]
        )
    if beats:
        session.execute(
            insert(table_of(AgentHeartbeatRow)), [{**h, "ledger_seq": entry.seq} for h in beats]
        )
    return WrittenBatch(
        entry.seq, entry.entry_hash, len(new), len(detections) - len(new), len(beats)
    )


def _not_stored(session: Session, detections: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The detections whose (cluster, detector, evidence key) is neither stored nor earlier
    in the batch."""
    keys = {(d["cluster"], d["detector_id"], d["evidence_key"]) for d in detections}
    stored: set[tuple[str, str, str]] = set()
    ordered = sorted(keys)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        columns = (DetectionRow.cluster, DetectionRow.detector_id, DetectionRow.evidence_key)
        rows = session.execute(select(*columns).where(tuple_(*columns).in_(chunk)))
        stored.update((c, d, k) for c, d, k in rows)
    new = []
    for detection in detections:
        key = (detection["cluster"], detection["detector_id"], detection["evidence_key"])
        if key not in stored:
            stored.add(key)
            new.append(detection)
    return new


def entry_content(session: Session, seq: int) -> dict[str, Any] | str:
    """A detections entry's content recomputed from the rows as they are now."""
    columns = [getattr(DetectionRow, name) for name in DETECTION_FIELDS]
    detections = (
        session.execute(select(*columns).where(DetectionRow.ledger_seq == seq)).mappings().all()
    )
    beat_columns = [getattr(AgentHeartbeatRow, name) for name in RECEIVER_HEARTBEAT_FIELDS]
    heartbeats = (
        session.execute(select(*beat_columns).where(AgentHeartbeatRow.ledger_seq == seq))
        .mappings()
        .all()
    )
    if not detections and not heartbeats:
        return "the detections and heartbeats it covers were deleted"
    return batch_content(detections, heartbeats)


def misplaced_rows(session: Session) -> str | None:
    """A detection or heartbeat naming an entry of the wrong kind (or none): what makes a
    heartbeat an audit receiver's is the kind of entry that chains it, so relabelling one
    shows here."""
    entry_type = select(LedgerEntryRow.entry_type).where(
        LedgerEntryRow.seq == DetectionRow.ledger_seq
    )
    detection = session.scalar(
        select(func.min(DetectionRow.id)).where(
            func.coalesce(entry_type.scalar_subquery(), "") != ledger.DETECTIONS_ENTRY
        )
    )
    if detection is not None:
        return f"detection #{detection} names a ledger entry that is not a detections batch"
    beat = AgentHeartbeatRow
    named = (
        select(func.min(beat.id))
        .outerjoin(LedgerEntryRow, LedgerEntryRow.seq == beat.ledger_seq)
        .where(beat.ledger_seq.is_not(None))
    )
    receiver = session.scalar(
        named.where(
            beat.component == AUDIT_COMPONENT,
            func.coalesce(LedgerEntryRow.entry_type, "") != ledger.DETECTIONS_ENTRY,
        )
    )
    if receiver is None:
        receiver = session.scalar(
            select(func.min(beat.id)).where(
                beat.component == AUDIT_COMPONENT, beat.ledger_seq.is_(None)
            )
        )
    if receiver is not None:
        return f"audit receiver heartbeat #{receiver} is not chained by a detections entry"
    other = session.scalar(
        named.where(
            beat.component != AUDIT_COMPONENT,
            LedgerEntryRow.entry_type == ledger.DETECTIONS_ENTRY,
        )
    )
    if other is not None:
        return f"heartbeat #{other} is chained by a detections entry but is not a receiver's"
    return None
