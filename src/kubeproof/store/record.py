"""Recording a scan: the run, every result, its summaries, the findings it moves and its
ledger entry, all in one transaction (everything lands or nothing does)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert

from kubeproof.frameworks import Framework
from kubeproof.inventory import Inventory
from kubeproof.model import Result, Status, Subject
from kubeproof.redaction import redact, redact_data
from kubeproof.scan import ScanReport
from kubeproof.store import ledger
from kubeproof.store.db import Store
from kubeproof.store.lifecycle import SubjectKey, apply_scan, as_subject_key
from kubeproof.store.schema import (
    ResultRow,
    ScanCheckCountRow,
    ScanRow,
    ScanSubjectCountRow,
    table_of,
)
from kubeproof.store.summaries import check_counts, subject_counts

NOT_EVALUATED = Status.NOT_EVALUATED.value


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
        "fingerprint": result.fingerprint,
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


def record_scan(
    store: Store,
    report: ScanReport,
    *,
    cluster: str,
    present: Iterable[Subject] = (),
    recorded_at: datetime | None = None,
) -> Recorded:
    """Record `report` as a scan of `cluster`. `present` lists every subject the source
    showed (present_subjects(inventory)), so that a subject without results in this framework
    is not taken for deleted."""
    memo: dict[str, str] = {}
    rows = [result_values(result, memo) for result in report.results]
    digest = ledger.results_digest(rows)
    values = scan_values(report, cluster, recorded_at or datetime.now(UTC))
    seen: set[SubjectKey] = {as_subject_key(s.kind, s.namespace, s.name) for s in present}
    checks_run = frozenset(check.id for check in report.framework.checks)
    with store.writing() as session:
        head = ledger.lock_head(session)  # first: whoever holds it records next
        scan = ScanRow(**values)
        session.add(scan)
        session.flush()
        for row in rows:
            row["scan_id"] = scan.id
        if rows:
            # Core, not the ORM's bulk path: several times faster for plain rows.
            session.execute(insert(table_of(ResultRow)), rows)
            # Derived summaries the period report reads instead of every result.
            session.execute(insert(table_of(ScanCheckCountRow)), check_counts(rows, scan.id))
            session.execute(insert(table_of(ScanSubjectCountRow)), subject_counts(rows, scan.id))
        changes = apply_scan(session, scan, rows, report.coverage, checks_run, seen)
        content = ledger.scan_content({"id": scan.id, **values}, digest)
        entry = ledger.append(
            session, head, ledger.SCAN_ENTRY, content, values["recorded_at"], scan.id
        )
        return Recorded(
            scan_id=scan.id,
            ledger_seq=entry.seq,
            ledger_hash=entry.entry_hash,
            results=len(rows),
            opened=changes.opened,
            reopened=changes.reopened,
            resolved=changes.resolved,
            deleted=changes.deleted_findings,
        )
