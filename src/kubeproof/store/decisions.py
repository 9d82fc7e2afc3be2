"""Admission decisions in the evidence store: written in batches, one ledger entry per
batch covering a digest over every decision in it (revision 0006).

A decision holds identities and digests only (who, which object, which images, which
rules, what answer), never an object's body. The webhook writes off its request path, so
a batch is whatever its background writer collected since the last flush.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, insert, select
from sqlalchemy.orm import Session

from kubeproof.redaction import redact
from kubeproof.store import ledger
from kubeproof.store.db import Store
from kubeproof.store.schema import (
    DIGEST,
    NAME,
    AdmissionBatchRow,
    AdmissionDecisionRow,
    LedgerEntryRow,
    table_of,
)

# The fields of a decision its batch's digest covers, in this order (row ids left out, as
# for results: the digest must not depend on insert order).
DECISION_FIELDS = (
    "uid",
    "decided_at",
    "username",
    "groups",
    "operation",
    "api_group",
    "kind",
    "namespace",
    "name",
    "owner_kind",
    "owner_name",
    "images",
    "rules",
    "decision",
    "allowed",
    "mode",
    "dry_run",
    "policy_digest",
    "reason",
)
# The batch is found by its ledger entry (ledger_seq), so its row id needs no hashing.
BATCH_FIELDS = (
    "cluster",
    "webhook",
    "recorded_at",
    "first_decided_at",
    "last_decided_at",
    "decisions",
)


@dataclass(frozen=True)
class RecordedBatch:
    batch_id: int
    decisions: int
    ledger_seq: int
    ledger_hash: str


def _canonical(value: Any) -> Any:
    return ledger.canonical_time(value) if isinstance(value, datetime) else value


def decisions_digest(rows: Iterable[Mapping[str, Any]] | Iterable[RowMapping]) -> str:
    """SHA-256 over every decision's canonical line, the lines sorted."""
    lines = sorted(
        ledger.canonical_json([_canonical(row[name]) for name in DECISION_FIELDS]) for row in rows
    )
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line)
        digest.update(b"\n")
    return digest.hexdigest()


def batch_content(batch: Mapping[str, Any], digest: str) -> dict[str, Any]:
    """What a batch's ledger entry hashes: every field of the batch and the decisions' digest."""
    return {
        "admission_batch": {name: _canonical(batch[name]) for name in BATCH_FIELDS},
        "decisions_digest": digest,
    }


# Column widths of the strings a request supplies (schema.AdmissionDecisionRow).
_WIDTHS = {
    "uid": NAME,
    "operation": 20,
    "api_group": NAME,
    "kind": NAME,
    "namespace": NAME,
    "name": NAME,
    "owner_kind": NAME,
    "owner_name": NAME,
    "decision": 20,
    "mode": 10,
    "policy_digest": DIGEST,
}


def _storable(value: Any) -> Any:
    """Every string without NUL characters (PostgreSQL stores none), in lists and maps too:
    a request's fields come from whoever called the webhook."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_storable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _storable(item) for key, item in value.items()}
    return value


def stored_values(
    decision: Mapping[str, Any], redacted: dict[str, str] | None = None
) -> dict[str, Any]:
    """A decision as a row: every field present, strings cut to their column's width and
    free text redacted again (a database row must never hold a credential, whatever
    produced the text). `redacted` remembers texts already redacted: most decisions give
    one of a few reasons."""
    values = {name: decision[name] for name in DECISION_FIELDS}
    for name in ("username", "groups", "images", "reason"):
        values[name] = _storable(values[name])
    for name, width in _WIDTHS.items():
        values[name] = _storable(str(values[name]))[:width]
    values["decided_at"] = ledger.utc(values["decided_at"])
    memo = {} if redacted is None else redacted
    reason = str(values["reason"])
    known = memo.get(reason)
    if known is None:
        known = memo[reason] = redact(reason)
    values["reason"] = known
    return values


def record_batch(
    store: Store,
    decisions: Sequence[Mapping[str, Any]],
    *,
    cluster: str,
    webhook: str,
    recorded_at: datetime,
) -> RecordedBatch:
    """Write `decisions` and the ledger entry covering them in one transaction."""
    if not decisions:
        raise ValueError("an admission batch needs at least one decision")
    memo: dict[str, str] = {}
    rows = [stored_values(decision, memo) for decision in decisions]
    times = [row["decided_at"] for row in rows]
    with store.writing() as session:
        head = ledger.lock_head(session)  # first: whoever holds it appends next
        batch = {
            "cluster": cluster,
            "webhook": webhook,
            "recorded_at": ledger.utc(recorded_at),
            "first_decided_at": min(times),
            "last_decided_at": max(times),
            "decisions": len(rows),
        }
        content = batch_content(batch, decisions_digest(rows))
        entry = ledger.append(session, head, ledger.ADMISSION_ENTRY, content, batch["recorded_at"])
        # The batch names its entry (found by it when verifying), so it is written second.
        row = AdmissionBatchRow(ledger_seq=entry.seq, **batch)
        session.add(row)
        session.flush()
        for values in rows:
            values["batch_id"] = row.id
        session.execute(insert(table_of(AdmissionDecisionRow)), rows)
        return RecordedBatch(row.id, len(rows), entry.seq, entry.entry_hash)


def entry_content(session: Session, seq: int) -> dict[str, Any] | str:
    """A batch entry's content recomputed from the rows, or why that is impossible."""
    batch = session.scalars(
        select(AdmissionBatchRow).where(AdmissionBatchRow.ledger_seq == seq)
    ).first()
    if batch is None:
        return "its batch of admission decisions was deleted"
    columns = [getattr(AdmissionDecisionRow, name) for name in DECISION_FIELDS]
    statement = select(*columns).where(AdmissionDecisionRow.batch_id == batch.id)
    rows = session.execute(statement).mappings().all()
    values = {name: getattr(batch, name) for name in BATCH_FIELDS}
    return batch_content(values, decisions_digest(rows))


def unchained_batch(session: Session) -> str | None:
    """A batch that no admission entry covers: added behind kubeproof's back."""
    covered = select(LedgerEntryRow.seq).where(LedgerEntryRow.entry_type == ledger.ADMISSION_ENTRY)
    batch = session.scalars(
        select(AdmissionBatchRow.id)
        .where(~AdmissionBatchRow.ledger_seq.in_(covered))
        .order_by(AdmissionBatchRow.id)
    ).first()
    if batch is None:
        return None
    return f"admission batch #{batch} has no ledger entry of its own: it was added afterwards"
