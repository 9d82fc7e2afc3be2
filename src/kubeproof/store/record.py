"""Recording a scan: the run, every result, its summaries, the findings it moves and its
ledger entry, all in one transaction (everything lands or nothing does)."""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from sqlalchemy import insert

from kubeproof.frameworks import Framework
from kubeproof.inventory import Inventory
from kubeproof.model import Result, Status, Subject
from kubeproof.redaction import redact, redact_data
from kubeproof.risk_acceptance import labels_by_object
from kubeproof.scan import ScanReport
from kubeproof.store import ledger
from kubeproof.store.db import Store
from kubeproof.store.lifecycle import SubjectIdentity, SubjectKey, apply_scan, as_subject_key
from kubeproof.store.schema import (
    ResultRow,
    ScanCheckCountRow,
    ScanRow,
    ScanSubjectCountRow,
    table_of,
)
from kubeproof.store.summaries import check_counts, subject_counts

NOT_EVALUATED = Status.NOT_EVALUATED.value
FAILED = Status.FAIL.value
# What summaries and finding lifecycles read of a result that does not fail (a failing
# one opens or updates a finding: all of it is kept).
_KEPT = ("fingerprint", "check_id", "status", "reason", "kind", "namespace", "name")
_KEPT_FAILING = (*_KEPT, "severity", "container", "message")
_CHUNK = 5000  # results inserted per statement


class KeptRow(Mapping[str, Any]):
    """What summaries and finding lifecycles read of one result (the `_KEPT` fields, and
    `_KEPT_FAILING` of a failing one), in under half the memory of a dict: a scan keeps
    one for every result until its findings are decided."""

    __slots__ = _KEPT_FAILING

    def __init__(self, row: Mapping[str, Any]) -> None:
        for name in _KEPT_FAILING if row["status"] == FAILED else _KEPT:
            setattr(self, name, row[name])

    def __getitem__(self, name: str) -> Any:
        if name in _KEPT_FAILING:
            try:
                return getattr(self, name)
            except AttributeError:
                pass
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (name for name in _KEPT_FAILING if hasattr(self, name))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _results_digest(
    rows: Iterable[Mapping[str, Any]], row_at: Callable[[int], Mapping[str, Any]]
) -> str:
    """ledger.results_digest, without holding every line at once (with their details, a
    large scan's lines take hundreds of MB): a line starts with its row's fingerprint, so
    the rows are ordered by fingerprint, the few that share one by their whole line, and
    the lines made again one at a time (`row_at(index)`) to be hashed in that order."""
    fingerprints = [row["fingerprint"] for row in rows]
    if not all(_plain(fingerprint) for fingerprint in fingerprints):
        return ledger.results_digest(row_at(index) for index in range(len(fingerprints)))
    order = sorted(range(len(fingerprints)), key=fingerprints.__getitem__)
    digest = hashlib.sha256()
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and fingerprints[order[end]] == fingerprints[order[start]]:
            end += 1
        for line in sorted(_line(row_at(index)) for index in order[start:end]):
            digest.update(line)
            digest.update(b"\n")
        start = end
    return digest.hexdigest()


def _plain(fingerprint: Any) -> bool:
    """A fingerprint whose lines sort as it does: JSON writes it as it is, between quotes,
    and the quote that ends it sorts before any of its characters (every fingerprint the
    engine makes: hex digits)."""
    return isinstance(fingerprint, str) and fingerprint.isascii() and fingerprint.isalnum()


def _line(row: Mapping[str, Any]) -> bytes:
    return ledger.canonical_json([row[name] for name in ledger.RESULT_FIELDS])


@dataclass(frozen=True)
class Recorded:
    scan_id: int
    ledger_seq: int
    ledger_hash: str
    results: int
    opened: int
    reopened: int
    resolved: int
    deleted: int


def catalogue_digest(framework: Framework) -> str:
    """SHA-256 over what the framework's checks mean (ids, severities, criteria, texts)
    and how it groups them: two scans with the same digest judged by the same rules."""
    checks = sorted(
        (dataclasses.asdict(check.spec) for check in framework.checks), key=lambda c: c["id"]
    )
    groups = [[group.id, [check.id for check in group.checks]] for group in framework.groups]
    return ledger.sha256_hex(ledger.canonical_json({"checks": checks, "groups": groups}))


def result_values(result: Result, redacted: dict[str, str] | None = None) -> dict[str, Any]:
    """A result as a row. The engine already redacts messages; they go through redaction
    again here because a database row must never hold a credential, whatever produced it.
    `redacted` remembers texts already redacted (a passing result's message is the
    check's title, the same for every subject)."""
    memo = {} if redacted is None else redacted
    subject = result.subject
    location = result.location
    return {
        # Interned: a large scan holds one for each of its results while it is recorded,
        # and so may its caller (the agent's verdicts).
        "fingerprint": sys.intern(result.fingerprint),
        "check_id": result.check.id,
        "status": result.status.value,
        "severity": result.check.severity.value,
        "api_version": subject.api_version,
        "kind": subject.kind,
        "namespace": subject.namespace or "",
        "name": subject.name,
        "container": subject.container or "",
        "message": _redacted(result.message, memo),
        "path": result.path,
        "reason": _redacted(result.reason, memo) if result.reason else result.reason,
        "location_file": location.file if location else None,
        "location_line": location.line if location else None,
        "details": redact_data(result.extra) if result.extra else None,
    }


def _redacted(text: str, memo: dict[str, str]) -> str:
    known = memo.get(text)
    if known is None:
        known = memo[text] = redact(text)
    return known


def scan_values(report: ScanReport, cluster: str, recorded_at: datetime) -> dict[str, Any]:
    coverage = report.coverage
    pss = report.pss_version
    return {
        "cluster": cluster,
        "sources": [redact(source) for source in report.sources],
        "framework": report.framework.id,
        "catalogue_digest": catalogue_digest(report.framework),
        "tool_version": report.tool_version,
        "pss_version": f"v{pss[0]}.{pss[1]}" if pss else None,
        "started_at": ledger.utc(report.started_at),
        "finished_at": ledger.utc(report.finished_at) if report.finished_at else None,
        "recorded_at": ledger.utc(recorded_at),
        "objects": report.objects,
        "files": report.files,
        "coverage": [
            {"kind": c.kind, "state": c.state, "detail": redact(c.detail)}
            for c in sorted(coverage.kinds.values(), key=lambda c: c.kind)
        ],
        "coverage_complete_by_default": coverage.complete_by_default,
        "input_errors": len(report.errors),
        "result_count": len(report.results),
        "totals": {status.value: count for status, count in sorted(report.totals().items())},
    }


def present_subjects(inventory: Inventory) -> list[Subject]:
    """Everything a source showed: its objects and the namespaces they live in (a
    namespace needs no Namespace object of its own to exist in a scan)."""
    subjects = [obj.subject for obj in inventory]
    subjects.extend(Subject("v1", "Namespace", None, name) for name in inventory.namespaces())
    return subjects


def subject_identities(inventory: Inventory) -> dict[SubjectKey, SubjectIdentity]:
    """The Kubernetes UID and labels of every object that has them (objects read from a
    cluster do), keyed like subjects: a workload's results find its top owner's. The labels
    are those a label-selector exception matches (the object's and its pod template's),
    redacted like any stored text: a label is not meant to hold a secret, but one might."""
    labels_of = labels_by_object(inventory)
    identities = {}
    for obj in inventory:
        subject = obj.subject
        key = as_subject_key(subject.kind, subject.namespace, subject.name)
        uid, labels = obj.uid, labels_of.get(key)
        if uid or labels:
            identities[key] = SubjectIdentity(
                redact(uid) if uid else None, redact_data(labels or {})
            )
    return identities


def record_scan(
    store: Store,
    report: ScanReport,
    *,
    cluster: str,
    present: Iterable[Subject] = (),
    recorded_at: datetime | None = None,
    identities: Mapping[SubjectKey, SubjectIdentity] | None = None,
    release_results: bool = False,
) -> Recorded:
    """Record `report` as a scan of `cluster`. `present` lists every subject the source
    showed (present_subjects(inventory)), so that a subject without results in this framework
    is not taken for deleted; `identities` (subject_identities(inventory)) their UIDs and
    labels. `release_results` empties `report.results` as they are written, for a caller
    that needs none of them afterwards (the agent): findings are then decided without
    holding them too."""
    memo: dict[str, str] = {}
    kept: list[KeptRow] = []  # of each result, what summaries and findings read

    def rows() -> Iterator[dict[str, Any]]:
        for result in report.results:
            row = result_values(result, memo)
            kept.append(KeptRow(row))
            yield row

    digest = _results_digest(rows(), lambda index: result_values(report.results[index], memo))
    values = scan_values(report, cluster, recorded_at or datetime.now(UTC))
    seen: set[SubjectKey] = {as_subject_key(s.kind, s.namespace, s.name) for s in present}
    checks_run = frozenset(check.id for check in report.framework.checks)
    # Derived summaries the period report reads instead of every result; worked out before
    # the transaction, which (on SQLite) holds the whole database while it lasts.
    check_rows, subject_rows = check_counts(kept, 0), subject_counts(kept, 0)
    with store.writing() as session:
        scan = ScanRow(**values)
        session.add(scan)
        session.flush()
        for row in (*check_rows, *subject_rows):
            row["scan_id"] = scan.id
        results = iter(report.results)
        while chunk := list(islice(results, _CHUNK)):
            # Core, not the ORM's bulk path: several times faster for plain rows.
            rows_of_chunk = [{**result_values(r, memo), "scan_id": scan.id} for r in chunk]
            session.execute(insert(table_of(ResultRow)), rows_of_chunk)
        if release_results:
            report.results = []
        if kept:
            session.execute(insert(table_of(ScanCheckCountRow)), check_rows)
            session.execute(insert(table_of(ScanSubjectCountRow)), subject_rows)
        # Locked only now: the results above are this transaction's own rows, and every
        # other writer (the agent's transitions) appends behind whoever holds the head.
        # Findings and the ledger entry are decided under it, one scan at a time.
        head = ledger.lock_head(session)
        changes = apply_scan(
            session, scan, kept, report.coverage, checks_run, seen, identities or {}
        )
        content = ledger.scan_content({"id": scan.id, **values}, digest)
        entry = ledger.append(
            session, head, ledger.SCAN_ENTRY, content, values["recorded_at"], scan.id
        )
        return Recorded(
            scan_id=scan.id,
            ledger_seq=entry.seq,
            ledger_hash=entry.entry_hash,
            results=len(kept),
            opened=changes.opened,
            reopened=changes.reopened,
            resolved=changes.resolved,
            deleted=changes.deleted_findings,
        )
