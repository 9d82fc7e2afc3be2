"""The JSON report: a documented, versioned schema (schemas/scan-report.schema.json)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, TextIO

import orjson

from kubeproof.collector import collector_paused
from kubeproof.frameworks import Framework
from kubeproof.model import (
    CheckSpec,
    Fingerprints,
    Location,
    Result,
    Status,
    Subject,
)
from kubeproof.reports.interface import Renderer
from kubeproof.scan import ScanReport

SCHEMA_VERSION = "1.2"
SCHEMA_ID = "https://kubeproof.dev/schemas/scan-report/v1.json"
SCHEMA_RESOURCE = "schemas/scan-report.schema.json"


@cache
def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) that every JSON report conforms to."""
    text = resources.files("kubeproof").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def groups_by_check(framework: Framework) -> dict[str, list[str]]:
    """The ids of the groups (criteria, controls) each check belongs to, in framework order."""
    index: dict[str, list[str]] = {}
    for group in framework.groups:
        for check in group.checks:
            index.setdefault(check.id, []).append(group.id)
    return index


def status_counts(counts: dict[Status, int]) -> dict[str, int]:
    """Every status, zero included, so consumers never meet a missing key."""
    return {status.value: counts.get(status, 0) for status in Status}


def result_as_dict(result: Result, groups: list[str]) -> dict[str, Any]:
    return _ResultEncoder({result.check.id: groups}).encode(result)


@dataclass(frozen=True, slots=True)
class _CheckFields:
    """A check's unchanging fields, built once per check rather than once per result."""

    severity: str
    criteria: list[str]
    groups: list[str]
    references: dict[str, Any]


class _ResultEncoder:
    """Result dicts for a report: a large scan has hundreds of thousands of results and
    only ~100 checks, so everything that belongs to the check is shared."""

    def __init__(self, groups_of: dict[str, list[str]]) -> None:
        self.groups_of = groups_of
        self.fields: dict[str, _CheckFields] = {}

    def _check_fields(self, spec: CheckSpec) -> _CheckFields:
        fields = self.fields.get(spec.id)
        if fields is None:
            pss = {"control": spec.pss.control, "level": spec.pss.level} if spec.pss else None
            fields = self.fields[spec.id] = _CheckFields(
                severity=spec.severity.value,
                criteria=sorted(spec.criteria),
                groups=self.groups_of.get(spec.id, []),
                references={"cis": list(spec.cis), "pss": pss, "nsa": list(spec.nsa)},
            )
        return fields

    def encode(self, result: Result) -> dict[str, Any]:
        spec = result.check
        fields = self.fields.get(spec.id) or self._check_fields(spec)
        location = result.location
        data = {
            "check": spec.id,
            "title": spec.title,
            "status": str(result.status),
            "severity": fields.severity,
            "subject": result.subject.as_dict(),
            "fingerprint": result.fingerprint,
            "criteria": fields.criteria,
            "groups": fields.groups,
            "references": fields.references,
            "message": result.message,
            "remediation": spec.remediation,
            "location": {"file": location.file, "line": location.line} if location else None,
            "path": result.path,
            "reason": result.reason,
        }
        if result.extra:
            data["details"] = result.extra
        return data


def report_as_dict(report: ScanReport) -> dict[str, Any]:
    encoder = _ResultEncoder(groups_by_check(report.framework))
    return {
        **_head(report),
        "results": [encoder.encode(r) for r in report.results],
        "errors": _errors(report),
    }


def _errors(report: ScanReport) -> list[dict[str, Any]]:
    return [{"source": e.source, "line": e.line, "message": e.message} for e in report.errors]


def _head(report: ScanReport) -> dict[str, Any]:
    """Everything but the results and the errors."""
    framework = report.framework
    return {
        "$schema": SCHEMA_ID,
        "schemaVersion": SCHEMA_VERSION,
        "tool": {"name": "kubeproof", "version": report.tool_version},
        "framework": {
            "id": framework.id,
            "title": framework.title,
            "reference": framework.reference,
        },
        "scan": {
            "startedAt": report.started_at.isoformat(),
            "finishedAt": report.finished_at.isoformat() if report.finished_at else None,
            "sources": report.sources,
            "cluster": report.cluster,
            "files": report.files,
            "objects": report.objects,
            "pssVersion": f"v{report.pss_version[0]}.{report.pss_version[1]}"
            if report.pss_version
            else None,
            "coverage": [
                {"kind": c.kind, "state": c.state, "detail": c.detail}
                for c in sorted(report.coverage.kinds.values(), key=lambda c: c.kind)
            ],
            "workloads": [
                {**subject.as_dict(), "pods": pods} for subject, pods in report.workloads
            ],
            **report.scan_facts,  # optional fields, such as vulnerabilityDatabase (--images)
        },
        "summary": {
            "totals": status_counts(report.totals()),
            "groups": [
                {
                    "id": g.id,
                    "title": g.title,
                    "verdict": g.verdict,
                    "checks": g.checks,
                    "counts": status_counts(g.counts),
                }
                for g in report.summary()
            ],
        },
    }


class JsonRenderer(Renderer):
    """Streams the report: a large scan has hundreds of thousands of results, and holding
    them all as one document (and then one string) would cost several times the memory of
    the scan itself. Each result is one compact line inside the `results` array."""

    name = "json"

    def render(self, report: ScanReport) -> str:
        buffer = io.StringIO()
        self.write(report, buffer)
        return buffer.getvalue()

    @collector_paused()  # hundreds of thousands of short-lived lines, no cycles
    def write(self, report: ScanReport, out: TextIO) -> None:
        head = _dumps(_head(report), indent=True)
        out.write(head[: head.rindex("}")].rstrip() + ',\n  "results": [')
        lines = _ResultLines(groups_by_check(report.framework))
        separator = "\n    "
        for start in range(0, len(report.results), _BATCH):
            batch = report.results[start : start + _BATCH]
            out.write(separator + ",\n    ".join(map(lines.line, batch)))
            separator = ",\n    "
        out.write('\n  ],\n  "errors": ' + _dumps(_errors(report)) + "\n}\n")


@dataclass(frozen=True, slots=True)
class _CheckText:
    heads: dict[Status, str]  # per status, a result's text up to its subject
    title: str  # a pass's message is its check's title


class _ResultLines:
    """One compact JSON line per result, exactly as `_ResultEncoder.encode` would give, built
    faster: a large scan has hundreds of thousands of results but only ~100 checks and some
    thousands of subjects and locations, so each of those is serialised once, and only what
    varies per result (message, path, reason, details) goes through the encoder."""

    def __init__(self, groups_of: dict[str, list[str]]) -> None:
        self.encoder = _ResultEncoder(groups_of)
        self.fingerprints = Fingerprints()
        self.checks: dict[str, _CheckText] = {}
        # A report's subjects and locations are shared by many results and stay alive
        # while it is written, so their identity is a safe and cheap key.
        self.subjects: dict[int, str] = {}
        self.locations: dict[int, str] = {}

    def _add_check(self, spec: CheckSpec) -> _CheckText:
        fields = self.encoder._check_fields(spec)
        before = _dumps({"check": spec.id, "title": spec.title})[:-1]
        after = _dumps(
            {
                "criteria": fields.criteria,
                "groups": fields.groups,
                "references": fields.references,
                "remediation": spec.remediation,
            }
        )[1:-1]
        heads = {
            status: f'{before},"status":"{status.value}","severity":"{fields.severity}",'
            f'{after},"subject":'
            for status in Status
        }
        check = _CheckText(heads, _dumps(spec.title))
        self.checks[spec.id] = check
        return check

    def _add_subject(self, subject: Subject) -> str:
        text = self.subjects[id(subject)] = _compact(subject.as_dict())
        return text

    def _add_location(self, location: Location) -> str:
        text = _compact({"file": location.file, "line": location.line})
        self.locations[id(location)] = text
        return text

    def line(self, result: Result) -> str:
        spec, location, path, reason = result.check, result.location, result.path, result.reason
        check = self.checks.get(spec.id) or self._add_check(spec)
        subject = self.subjects.get(id(result.subject)) or self._add_subject(result.subject)
        place = "null"
        if location is not None:
            place = self.locations.get(id(location)) or self._add_location(location)
        message = check.title if result.message is spec.title else _compact(result.message)
        end = f',"details":{_compact(result.extra)}}}' if result.extra else "}"
        return (
            f'{check.heads[result.status]}{subject},"fingerprint":"'
            f'{self.fingerprints.of(result)}","message":{message},"location":{place},'
            f'"path":{"null" if path is None else _compact(path)},'
            f'"reason":{"null" if reason is None else _compact(reason)}{end}'
        )


# Lines are joined and written a hundred at a time: a batch of some 100 KB stays in the
# processor's cache and below the allocator's threshold for mapping fresh pages, which made
# writing batches of 2,000 (2 MB) seven times slower.
_BATCH = 100


def _compact(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _dumps(value: Any, *, indent: bool = False) -> str:
    # orjson: several times faster than the standard library over a large report.
    options = orjson.OPT_NON_STR_KEYS | (orjson.OPT_INDENT_2 if indent else 0)
    return orjson.dumps(value, option=options).decode()
