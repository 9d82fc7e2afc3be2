"""Rehashing a recorded scan for `evidence verify`: its results digest and the counts its
summaries must match, in one pass over plain rows.

This is verification's hot loop (a year of daily scans is millions of results), so it reads
tuples through Core rather than ORM objects or mappings, takes the `details` JSON as the
stored text and parses it with orjson, and counts the summaries in the same pass.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Text, cast, select, type_coerce
from sqlalchemy.orm import Session

from kubeproof.collector import collector_paused
from kubeproof.model import Status
from kubeproof.store.decoding import json_values
from kubeproof.store.schema import ResultRow
from kubeproof.store.summaries import CheckKey, SubjectKey

_NOT_EVALUATED = Status.NOT_EVALUATED.value


def _columns(dialect: str) -> list[ColumnElement[Any]]:
    from kubeproof.store.ledger import RESULT_FIELDS

    columns: list[ColumnElement[Any]] = [getattr(ResultRow, name) for name in RESULT_FIELDS]
    # The stored JSON text: the JSON type's own decoding (the json module) is the
    # slowest step of reading a result. SQLite's is read as stored, without a CAST: a
    # blob written over it must reach the decoder, not fail in the driver.
    details = ResultRow.details
    text = type_coerce(details, Text) if dialect == "sqlite" else cast(details, Text)
    columns[RESULT_FIELDS.index("details")] = text
    return columns


@dataclass(frozen=True)
class Rehashed:
    digest: str  # ledger.results_digest over the scan's results
    by_check: Counter[CheckKey]
    by_subject: dict[SubjectKey, Counter[str]]


def rehash_scan(session: Session, scan_id: int) -> Rehashed:
    from kubeproof.store.ledger import RESULT_FIELDS

    connection = session.connection()
    statement = select(*_columns(connection.dialect.name)).where(ResultRow.scan_id == scan_id)
    with collector_paused():
        rows = connection.execute(statement).all()
        if not rows:
            return Rehashed(hashlib.sha256().hexdigest(), Counter(), {})
        # Column-wise from here: zip and Counter run in C, not once per result in Python.
        columns = dict(zip(RESULT_FIELDS, zip(*rows, strict=True), strict=True))
        return Rehashed(_digest(columns), *_counts(columns))


def _digest(columns: dict[str, tuple[Any, ...]]) -> str:
    """ledger.results_digest over the columns: each result's canonical line, sorted."""
    from kubeproof.store.ledger import RESULT_FIELDS

    dumps, sort_keys = orjson.dumps, orjson.OPT_SORT_KEYS
    details = json_values(columns["details"], "results", "details")
    assert RESULT_FIELDS[-1] == "details", "the lines below put details last"
    others = [columns[name] for name in RESULT_FIELDS[:-1]]
    lines = sorted(
        dumps((*row, parsed), option=sort_keys)
        for *row, parsed in zip(*others, details, strict=True)
    )
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line)
        digest.update(b"\n")
    return digest.hexdigest()


def _counts(
    columns: dict[str, tuple[Any, ...]],
) -> tuple[Counter[CheckKey], dict[SubjectKey, Counter[str]]]:
    """What the scan's summaries must say: results per check and status (and reason, for
    not_evaluated), and per subject by status."""
    statuses = columns["status"]
    reasons = [
        r if s == _NOT_EVALUATED else None for s, r in zip(statuses, columns["reason"], strict=True)
    ]
    by_check: Counter[CheckKey] = Counter(zip(columns["check_id"], statuses, reasons, strict=True))
    per_status = Counter(
        zip(columns["kind"], columns["namespace"], columns["name"], statuses, strict=True)
    )
    by_subject: dict[SubjectKey, Counter[str]] = {}
    for (kind, namespace, name, status), count in per_status.items():
        by_subject.setdefault((kind, namespace, name), Counter())[status] += count
    return by_check, by_subject
