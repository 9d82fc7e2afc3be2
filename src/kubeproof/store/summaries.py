"""Per-scan summaries (revision 0004): counts derived from a scan's results, written with
the scan so that period reports need not read every result, and re-derived by
`evidence verify` so that an edited summary cannot change a report unnoticed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import RowMapping, select
from sqlalchemy.orm import Session

from kubeproof.model import Status
from kubeproof.store.schema import ScanCheckCountRow, ScanSubjectCountRow

NOT_EVALUATED = Status.NOT_EVALUATED.value


def check_counts(
    rows: Sequence[Mapping[str, Any]] | Sequence[RowMapping], scan_id: int
) -> list[dict[str, Any]]:
    """Results per check and status, and per reason for those not evaluated: the rows of
    scan_check_counts (the same as revision 0004's GROUP BY over results)."""
    counts = Counter(
        (row["check_id"], row["status"], row["reason"] if row["status"] == NOT_EVALUATED else None)
        for row in rows
    )
    return [
        {"scan_id": scan_id, "check_id": check, "status": status, "reason": reason, "results": n}
        for (check, status, reason), n in counts.items()
    ]


def subject_counts(
    rows: Sequence[Mapping[str, Any]] | Sequence[RowMapping], scan_id: int
) -> list[dict[str, Any]]:
    """Results per subject (kind, namespace, top-owner name), counted by status: the rows
    of scan_subject_counts."""
    totals: dict[tuple[str, str, str], Counter[str]] = {}
    for row in rows:
        key = (row["kind"], row["namespace"], row["name"])
        counter = totals.get(key)
        if counter is None:
            counter = totals[key] = Counter()
        counter[row["status"]] += 1
    return [
        {
            "scan_id": scan_id,
            "kind": kind,
            "namespace": namespace,
            "name": name,
            "results": counter.total(),
            "fail": counter[Status.FAIL.value],
            "not_evaluated": counter[NOT_EVALUATED],
            "excepted": counter[Status.EXCEPTED.value],
        }
        for (kind, namespace, name), counter in totals.items()
    ]


CheckKey = tuple[str, str, str | None]  # check, status, reason (not_evaluated only)
SubjectKey = tuple[str, str, str]  # kind, namespace, top-owner name


def summaries_problem(
    session: Session,
    scan_id: int,
    by_check: Counter[CheckKey],
    by_subject: Mapping[SubjectKey, Counter[str]],
) -> str | None:
    """What differs between a scan's stored summaries and the counts of its results
    (`by_check`, and the statuses of each subject's results in `by_subject`)."""
    connection = session.connection()
    stored_checks = connection.execute(
        select(
            ScanCheckCountRow.check_id,
            ScanCheckCountRow.status,
            ScanCheckCountRow.reason,
            ScanCheckCountRow.results,
        ).where(ScanCheckCountRow.scan_id == scan_id)
    ).all()
    expected_checks = [(*key, n) for key, n in by_check.items()]
    if Counter(map(tuple, stored_checks)) != Counter(expected_checks):
        return "its per-check counts (scan_check_counts) no longer match its results"
    stored_subjects = connection.execute(
        select(
            ScanSubjectCountRow.kind,
            ScanSubjectCountRow.namespace,
            ScanSubjectCountRow.name,
            ScanSubjectCountRow.results,
            ScanSubjectCountRow.fail,
            ScanSubjectCountRow.not_evaluated,
            ScanSubjectCountRow.excepted,
        ).where(ScanSubjectCountRow.scan_id == scan_id)
    ).all()
    expected_subjects = [
        (
            *key,
            counter.total(),
            counter[Status.FAIL.value],
            counter[NOT_EVALUATED],
            counter[Status.EXCEPTED.value],
        )
        for key, counter in by_subject.items()
    ]
    if Counter(map(tuple, stored_subjects)) != Counter(expected_subjects):
        return "its per-subject counts (scan_subject_counts) no longer match its results"
    return None
