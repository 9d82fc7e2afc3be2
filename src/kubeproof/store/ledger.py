"""The tamper-evident ledger: a hash chain over everything recorded.

Entry n's hash is SHA-256 over a canonical serialisation (sorted-key compact JSON) of
{seq, type, recorded_at, prev: entry n-1's hash, content}. A scan entry's content is the
scan row and a digest over all of its results in a canonical order (each result as a
JSON array, the lines sorted), so editing, adding or removing any result or any field of
the run changes the hash; removing, inserting or reordering entries breaks the chain.
The `ledger_head` row repeats the newest entry, so dropping entries at the end shows too.
An exception entry's content is every field of the exception; a revocation entry's, every
field of the revocation.

Verification recomputes everything from the rows as they are now. What it cannot see on
its own is the whole store being rewritten consistently from some entry on: publish the
head hash it prints somewhere else, and check it later with `--expect HASH`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import RowMapping, select
from sqlalchemy.orm import Session

from kubeproof.store.schema import (
    ExceptionRevocationRow,
    ExceptionRow,
    LedgerEntryRow,
    LedgerHeadRow,
    ResultRow,
    ScanRow,
)
from kubeproof.store.summaries import summaries_problem

GENESIS_HASH = "0" * 64
HEAD_ID = 1
SCAN_ENTRY = "scan"
EXCEPTION_ENTRY = "exception"
REVOCATION_ENTRY = "exception_revoked"

# The fields of a result that its digest covers, in this order. Row ids are left out:
# they say nothing about the evidence, and the digest must not depend on insert order.
RESULT_FIELDS = (
    "fingerprint",
    "check_id",
    "status",
    "severity",
    "api_version",
    "kind",
    "namespace",
    "name",
    "container",
    "message",
    "path",
    "reason",
    "location_file",
    "location_line",
    "details",
)
SCAN_FIELDS = (
    "id",
    "cluster",
    "sources",
    "framework",
    "catalogue_digest",
    "tool_version",
    "pss_version",
    "started_at",
    "finished_at",
    "recorded_at",
    "objects",
    "files",
    "coverage",
    "coverage_complete_by_default",
    "input_errors",
    "result_count",
    "totals",
)


# An exception's and a revocation's fields, every one covered by its entry's hash.
EXCEPTION_FIELDS = (
    "id",
    "checks",
    "subjects",
    "namespaces",
    "selector",
    "owner",
    "reason",
    "ticket",
    "approver",
    "created_at",
    "expires_on",
)
REVOCATION_FIELDS = ("id", "exception_id", "revoked_at", "revoked_by", "reason")


def utc(value: datetime) -> datetime:
    """Aware UTC. SQLite hands back naive datetimes; everything kubeproof writes is UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def canonical_time(value: datetime | None) -> str | None:
    return None if value is None else utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> bytes:
    """Compact UTF-8 JSON with sorted keys (orjson: deterministic, and fast enough to
    hash hundreds of thousands of results)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def results_digest(rows: Iterable[Mapping[str, Any]] | Iterable[RowMapping]) -> str:
    """SHA-256 over every result's canonical line, the lines sorted."""
    lines = sorted(canonical_json([row[name] for name in RESULT_FIELDS]) for row in rows)
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line)
        digest.update(b"\n")
    return digest.hexdigest()


def scan_content(scan: Mapping[str, Any], digest: str) -> dict[str, Any]:
    run = {
        name: canonical_time(scan[name]) if isinstance(scan[name], datetime) else scan[name]
        for name in SCAN_FIELDS
    }
    return {"scan": run, "results_digest": digest}


def row_content(row: object, fields: Iterable[str]) -> dict[str, Any]:
    """An exception's or revocation's fields, times and dates in canonical form."""
    content: dict[str, Any] = {}
    for name in fields:
        value = getattr(row, name)
        if isinstance(value, datetime):
            value = canonical_time(value)
        elif isinstance(value, date):
            value = value.isoformat()
        content[name] = value
    return content


def entry_hash(
    seq: int, entry_type: str, recorded_at: datetime, prev_hash: str, content: Any
) -> str:
    payload = {
        "seq": seq,
        "type": entry_type,
        "recorded_at": canonical_time(recorded_at),
        "prev": prev_hash,
        "content": content,
    }
    return sha256_hex(canonical_json(payload))


def lock_head(session: Session) -> LedgerHeadRow:
    """The ledger head, locked until the transaction ends: appends happen one at a time.
    (SQLite has no row locks; its writers already hold the database from BEGIN IMMEDIATE.)"""
    statement = select(LedgerHeadRow).where(LedgerHeadRow.id == HEAD_ID).with_for_update()
    head = session.scalars(statement).one_or_none()
    if head is None:
        raise LedgerError("the ledger head row is missing: the ledger was tampered with")
    return head


def append(
    session: Session,
    head: LedgerHeadRow,
    entry_type: str,
    content: Any,
    recorded_at: datetime,
    scan_id: int | None = None,
    *,
    exception_id: int | None = None,
    revocation_id: int | None = None,
) -> LedgerEntryRow:
    seq = head.seq + 1
    entry = LedgerEntryRow(
        seq=seq,
        entry_type=entry_type,
        scan_id=scan_id,
        exception_id=exception_id,
        revocation_id=revocation_id,
        recorded_at=recorded_at,
        prev_hash=head.entry_hash,
        entry_hash=entry_hash(seq, entry_type, recorded_at, head.entry_hash, content),
    )
    session.add(entry)
    head.seq, head.entry_hash = seq, entry.entry_hash
    session.flush()
    return entry


class LedgerError(Exception):
    pass


@dataclass(frozen=True)
class Verification:
    entries: int
    head: str  # the hash of the last entry that verified
    problem: str | None = None  # what is wrong, naming the first bad entry

    @property
    def intact(self) -> bool:
        return self.problem is None


def verify(session: Session, expect: str | None = None) -> Verification:
    """Recompute the chain from the rows as they are now; stop at the first bad entry."""
    previous, count = GENESIS_HASH, 0
    seen_expected = expect is None
    for entry in session.scalars(select(LedgerEntryRow).order_by(LedgerEntryRow.seq)):
        problem = _entry_problem(session, entry, count + 1, previous)
        if problem is not None:
            return Verification(count, previous, f"{_label(entry)}: {problem}")
        previous, count = entry.entry_hash, count + 1
        seen_expected = seen_expected or entry.entry_hash == expect
    head = session.get(LedgerHeadRow, HEAD_ID)
    if head is None:
        return Verification(count, previous, "the ledger head row is missing")
    if (head.seq, head.entry_hash) != (count, previous):
        return Verification(
            count,
            previous,
            f"ledger head says {head.seq} entries ending in {head.entry_hash[:16]}…, but the "
            f"chain ends at entry #{count}: entries at the end were deleted or replaced",
        )
    unchained = session.scalars(
        select(ScanRow.id)
        .where(
            ~ScanRow.id.in_(
                select(LedgerEntryRow.scan_id).where(LedgerEntryRow.scan_id.is_not(None))
            )
        )
        .order_by(ScanRow.id)
    ).first()
    if unchained is not None:
        return Verification(
            count, previous, f"scan #{unchained} has no ledger entry: it was added afterwards"
        )
    unchained_text = _unchained_exception(session)
    if unchained_text is not None:
        return Verification(count, previous, unchained_text)
    if not seen_expected:
        return Verification(
            count,
            previous,
            f"no ledger entry has the expected hash {expect}: the history before it was rewritten",
        )
    return Verification(count, previous)


def _unchained_exception(session: Session) -> str | None:
    """An exception or revocation that no ledger entry covers: added behind kubeproof's back."""
    chained = select(LedgerEntryRow.exception_id).where(LedgerEntryRow.exception_id.is_not(None))
    exception = session.scalars(
        select(ExceptionRow.id).where(~ExceptionRow.id.in_(chained)).order_by(ExceptionRow.id)
    ).first()
    if exception is not None:
        return f"exception EXC-{exception} has no ledger entry: it was added afterwards"
    chained = select(LedgerEntryRow.revocation_id).where(LedgerEntryRow.revocation_id.is_not(None))
    revocation = session.scalars(
        select(ExceptionRevocationRow.exception_id)
        .where(~ExceptionRevocationRow.id.in_(chained))
        .order_by(ExceptionRevocationRow.id)
    ).first()
    if revocation is not None:
        return (
            f"the revocation of exception EXC-{revocation} has no ledger entry: "
            "it was added afterwards"
        )
    return None


def _label(entry: LedgerEntryRow) -> str:
    scan = f", scan #{entry.scan_id}" if entry.scan_id is not None else ""
    if entry.exception_id is not None:
        scan = f", exception EXC-{entry.exception_id}"
    elif entry.revocation_id is not None:
        scan = f", revocation #{entry.revocation_id}"
    recorded = canonical_time(entry.recorded_at)
    return f"ledger entry #{entry.seq} ({entry.entry_type}{scan}, recorded {recorded})"


def _entry_problem(
    session: Session, entry: LedgerEntryRow, expected_seq: int, previous: str
) -> str | None:
    if entry.seq != expected_seq:
        return (
            f"expected entry #{expected_seq} here: "
            "an entry before it was deleted or the entries were renumbered"
        )
    if entry.prev_hash != previous:
        return (
            "does not link to the entry before it: "
            "an entry was deleted, inserted or moved at this point"
        )
    content = _content(session, entry)
    if isinstance(content, str):
        return content
    recomputed = entry_hash(
        entry.seq, entry.entry_type, entry.recorded_at, entry.prev_hash, content
    )
    if recomputed != entry.entry_hash:
        if entry.entry_type == SCAN_ENTRY:
            return "its content no longer matches its hash: the scan or its results were edited"
        return "its content no longer matches its hash: the exception or revocation was edited"
    return None


def _content(session: Session, entry: LedgerEntryRow) -> dict[str, Any] | str:
    """The entry's content recomputed from the rows, or what makes that impossible."""
    if entry.entry_type == EXCEPTION_ENTRY:
        exception = session.get(ExceptionRow, entry.exception_id) if entry.exception_id else None
        if exception is None:
            return f"its exception EXC-{entry.exception_id} was deleted"
        return {"exception": row_content(exception, EXCEPTION_FIELDS)}
    if entry.entry_type == REVOCATION_ENTRY:
        revocation = (
            session.get(ExceptionRevocationRow, entry.revocation_id)
            if entry.revocation_id
            else None
        )
        if revocation is None:
            return f"its revocation #{entry.revocation_id} was deleted"
        return {"revocation": row_content(revocation, REVOCATION_FIELDS)}
    if entry.entry_type != SCAN_ENTRY:
        return f"unknown entry type {entry.entry_type!r}"
    if entry.scan_id is None:
        return "names no scan"
    scan = session.get(ScanRow, entry.scan_id)
    if scan is None:
        return f"its scan #{entry.scan_id} was deleted"
    columns = [getattr(ResultRow, name) for name in RESULT_FIELDS]
    rows = session.execute(select(*columns).where(ResultRow.scan_id == scan.id)).mappings().all()
    # The summaries are derived, not hashed: re-derive them, so that an edited count cannot
    # change a period report while the chain still verifies.
    problem = summaries_problem(session, scan.id, rows)
    if problem is not None:
        return problem
    scan_values = {name: getattr(scan, name) for name in SCAN_FIELDS}
    return scan_content(scan_values, results_digest(rows))
