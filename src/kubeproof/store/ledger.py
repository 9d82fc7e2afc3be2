"""The tamper-evident ledger: a hash chain over everything recorded.

Entry n's hash is SHA-256 over a canonical serialisation (sorted-key compact JSON) of
{seq, type, recorded_at, prev: entry n-1's hash, content}. A scan entry's content is the
scan row and a digest over all of its results in a canonical order (each result as a
JSON array, the lines sorted), so editing, adding or removing any result or any field of
the run changes the hash; removing, inserting or reordering entries breaks the chain.
The `ledger_head` row repeats the newest entry, so dropping entries at the end shows too.
An exception entry's content is every field of the exception; a revocation entry's, every
field of the revocation.
Baseline decisions and the agent's transitions and heartbeats name the entry that
covers them; its content is their count and a digest over their rows (store/monitoring.py);
so do audit detections and the audit receiver's heartbeats (store/detections.py).

Verification recomputes everything from the rows as they are now. What it cannot see on
its own is the whole store being rewritten consistently from some entry on: publish the
head hash it prints somewhere else, and check it later with `--expect HASH`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import RowMapping, select
from sqlalchemy.orm import Session

from kubeproof.store.decoding import UnreadableValue
from kubeproof.store.rehash import rehash_scan
from kubeproof.store.schema import (
    ExceptionRevocationRow,
    ExceptionRow,
    LedgerEntryRow,
    LedgerHeadRow,
    ScanRow,
)
from kubeproof.store.signing import (
    ENTRY_PURPOSE,
    PublicKey,
    SignatureAudit,
    key_ring,
    signer_of,
)
from kubeproof.store.summaries import summaries_problem

if TYPE_CHECKING:
    from kubeproof.store.head import ExportedHead

GENESIS_HASH = "0" * 64
HEAD_ID = 1
SCAN_ENTRY = "scan"
EXCEPTION_ENTRY = "exception"
REVOCATION_ENTRY = "exception_revoked"
ADMISSION_ENTRY = "admission"  # a batch of webhook decisions (store/decisions.py)
BASELINE_ENTRY = "baseline"  # one approval or revocation of baselines (store/baselines.py)
MONITORING_ENTRY = "monitoring"  # a batch of agent transitions and heartbeats (store/monitoring.py)
DETECTIONS_ENTRY = "detections"  # audit detections, Falco alerts (store/detections.py)

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
    sign_entry(session, entry)
    session.add(entry)
    head.seq, head.entry_hash = seq, entry.entry_hash
    session.flush()
    return entry


def sign_entry(session: Session, entry: LedgerEntryRow) -> None:
    """Sign the entry with the key its store was opened with, if any. Every append goes
    through here, so each kind of entry is signed alike."""
    signer = signer_of(session)
    if signer is not None:
        entry.signature = signer.sign(ENTRY_PURPOSE, entry.entry_hash.encode())
        entry.key_id = signer.key_id


class LedgerError(Exception):
    pass


@dataclass(frozen=True)
class Verification:
    entries: int
    head: str  # the hash of the last entry that verified
    problem: str | None = None  # what is wrong, naming the first bad entry
    rehashed_from: int = 1  # entries before it were trusted (--since-head)
    signed: int = 0  # entries that carry a signature
    key_ids: tuple[str, ...] = ()  # the keys that signed them
    signatures_checked: bool = False  # public keys were given and every signature verified

    @property
    def intact(self) -> bool:
        return self.problem is None


def verify(
    session: Session,
    expect: str | None = None,
    *,
    public_keys: Sequence[PublicKey] = (),
    expect_head: ExportedHead | None = None,
    since: ExportedHead | None = None,
) -> Verification:
    """Recompute the chain from the rows as they are now; stop at the first bad entry.
    With `public_keys`, check every entry's signature too. `since` (an exported head whose
    signature the caller checked) is trusted: only the entries after it are rehashed."""
    try:
        return _verify(session, expect, public_keys, expect_head, since)
    except UnreadableValue as error:
        # A ledger row itself (an entry's own rows are reported with their entry).
        problem = f"the ledger's rows cannot be read ({error}): they were edited"
        return Verification(0, GENESIS_HASH, problem, since.seq + 1 if since else 1)


def _verify(
    session: Session,
    expect: str | None,
    public_keys: Sequence[PublicKey],
    expect_head: ExportedHead | None,
    since: ExportedHead | None,
) -> Verification:
    audit = SignatureAudit(key_ring(public_keys))
    previous, count = GENESIS_HASH, 0
    seen_expected = expect is None
    anchors = {1: "", **({expect_head.seq: ""} if expect_head else {})}
    entries = select(LedgerEntryRow).order_by(LedgerEntryRow.seq)
    if since is not None:
        trusted = _trusted_start(session, since, audit)
        if isinstance(trusted, str):
            return Verification(0, GENESIS_HASH, trusted, since.seq + 1)
        previous, count = since.entry_hash, since.seq
        anchors.update({1: since.first_entry_hash, since.seq: since.entry_hash})
        seen_expected = seen_expected or since.entry_hash == expect
        entries = entries.where(LedgerEntryRow.seq > since.seq)

    def outcome(problem: str | None = None) -> Verification:
        first = since.seq + 1 if since else 1
        checked = audit.checking and problem is None
        ids = tuple(sorted(audit.key_ids))
        return Verification(count, previous, problem, first, audit.signed, ids, checked)

    for entry in session.scalars(entries):
        problem = _entry_problem(session, entry, count + 1, previous) or audit.problem(
            entry.seq, entry.entry_hash, entry.signature, entry.key_id
        )
        if problem is not None:
            return outcome(f"{_label(entry)}: {problem}")
        previous, count = entry.entry_hash, count + 1
        seen_expected = seen_expected or entry.entry_hash == expect
        if entry.seq in anchors:
            anchors[entry.seq] = entry.entry_hash
    if expect_head is not None:
        problem = _head_problem(expect_head, anchors, count)
        if problem is not None:
            return outcome(problem)
    problem = audit.finish()
    if problem is not None:
        return outcome(problem)
    head = session.get(LedgerHeadRow, HEAD_ID)
    if head is None:
        return outcome("the ledger head row is missing")
    if (head.seq, head.entry_hash) != (count, previous):
        return outcome(
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
        return outcome(f"scan #{unchained} has no ledger entry: it was added afterwards")
    unchained_text = (
        _unchained_exception(session)
        or _unchained_admission(session)
        or _unchained_monitoring(session)
        or _misplaced_detections(session)
    )
    if unchained_text is not None:
        return outcome(unchained_text)
    if not seen_expected:
        return outcome(
            f"no ledger entry has the expected hash {expect}: the history before it was rewritten"
        )
    return outcome()


def _trusted_start(session: Session, since: ExportedHead, audit: SignatureAudit) -> str | None:
    """Check that the chain still holds the trusted head `since` (and began where it
    did); None if so, else what is wrong."""
    rows = session.execute(
        select(
            LedgerEntryRow.seq,
            LedgerEntryRow.entry_hash,
            LedgerEntryRow.signature,
            LedgerEntryRow.key_id,
        ).where(LedgerEntryRow.seq.in_({1, since.seq}))
    ).all()
    found = {row.seq: row for row in rows}
    anchor = found.get(since.seq)
    if anchor is None:
        return (
            f"the ledger has no entry #{since.seq}, the trusted head in {since.source}: "
            "the store was truncated or is another store"
        )
    hashes = {seq: row.entry_hash for seq, row in found.items()}
    problem = _head_problem(since, hashes, since.seq)
    if problem is not None:
        return problem
    # Signing may have begun before the trusted head: carry that on.
    return audit.problem(anchor.seq, anchor.entry_hash, anchor.signature, anchor.key_id)


def _head_problem(head: ExportedHead, hashes: dict[int, str], count: int) -> str | None:
    """How the chain (its entries' hashes at 1 and head.seq, `count` entries) disagrees
    with an exported head."""
    if count < head.seq:
        return (
            f"the chain ends at entry #{count}, before entry #{head.seq} of {head.source}: "
            "the store was truncated below the exported head"
        )
    if hashes.get(1) != head.first_entry_hash:
        return (
            f"entry #1 is not the first entry of {head.source}: "
            "another store, or its history was rewritten from the start"
        )
    if hashes.get(head.seq) != head.entry_hash:
        return (
            f"entry #{head.seq} no longer has the hash of {head.source} "
            f"({head.entry_hash[:16]}…): the history up to it was rewritten"
        )
    return None


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


def _unchained_admission(session: Session) -> str | None:
    from kubeproof.store.decisions import unchained_batch  # it builds on this module

    return unchained_batch(session)


def _unchained_monitoring(session: Session) -> str | None:
    from kubeproof.store.monitoring import unchained_rows  # it builds on this module

    return unchained_rows(session)


def _misplaced_detections(session: Session) -> str | None:
    from kubeproof.store.detections import misplaced_rows  # it builds on this module

    return misplaced_rows(session)


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
    try:
        content = _content(session, entry)
    except UnreadableValue as error:
        return f"its stored rows cannot be read ({error}): they were edited"
    if isinstance(content, str):
        return content
    recomputed = entry_hash(
        entry.seq, entry.entry_type, entry.recorded_at, entry.prev_hash, content
    )
    if recomputed != entry.entry_hash:
        if entry.entry_type == SCAN_ENTRY:
            return "its content no longer matches its hash: the scan or its results were edited"
        if entry.entry_type == ADMISSION_ENTRY:
            return (
                "its content no longer matches its hash: admission decisions of its batch "
                "were edited, added or deleted"
            )
        if entry.entry_type == BASELINE_ENTRY:
            return "its content no longer matches its hash: baselines it covers were edited"
        if entry.entry_type == DETECTIONS_ENTRY:
            return (
                "its content no longer matches its hash: detections or audit receiver "
                "heartbeats of its batch were edited, added or deleted"
            )
        if entry.entry_type == MONITORING_ENTRY:
            return (
                "its content no longer matches its hash: agent transitions or heartbeats of "
                "its batch were edited, added or deleted"
            )
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
    if entry.entry_type == ADMISSION_ENTRY:
        from kubeproof.store.decisions import entry_content  # it builds on this module

        return entry_content(session, entry.seq)
    if entry.entry_type == DETECTIONS_ENTRY:
        from kubeproof.store.detections import entry_content as detections_content

        return detections_content(session, entry.seq)
    if entry.entry_type in (BASELINE_ENTRY, MONITORING_ENTRY):
        from kubeproof.store.monitoring import chained_content  # it builds on this module

        return chained_content(session, entry)
    if entry.entry_type != SCAN_ENTRY:
        return f"unknown entry type {entry.entry_type!r}"
    if entry.scan_id is None:
        return "names no scan"
    scan = session.get(ScanRow, entry.scan_id)
    if scan is None:
        return f"its scan #{entry.scan_id} was deleted"
    rehashed = rehash_scan(session, scan.id)
    # The summaries are derived, not hashed: re-derive them, so that an edited count cannot
    # change a period report while the chain still verifies.
    problem = summaries_problem(session, scan.id, rehashed.by_check, rehashed.by_subject)
    if problem is not None:
        return problem
    scan_values = {name: getattr(scan, name) for name in SCAN_FIELDS}
    return scan_content(scan_values, rehashed.digest)
