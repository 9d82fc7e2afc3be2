"""The JSON report: a documented, versioned schema (schemas/scan-report.schema.json)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import orjson

from kubeproof.frameworks import Framework
from kubeproof.model import CheckSpec, Result, Status
from kubeproof.reports.interface import Renderer
from kubeproof.scan import ScanReport

SCHEMA_VERSION = "1.0"
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


class _ResultEncoder:
    """Result dicts, with each check's unchanging fields built once per check rather than
    once per result: a large scan has hundreds of thousands of results and ~100 checks."""

    def __init__(self, groups_of: dict[str, list[str]]) -> None:
        self.groups_of = groups_of
        self.static: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    def _parts(self, spec: CheckSpec) -> tuple[dict[str, Any], dict[str, Any]]:
        parts = self.static.get(spec.id)
        if parts is None:
            head = {"check": spec.id, "title": spec.title}
            tail = {
                "criteria": sorted(spec.criteria),
                "groups": self.groups_of.get(spec.id, []),
                "references": {
                    "cis": list(spec.cis),
                    "pss": {"control": spec.pss.control, "level": spec.pss.level}
                    if spec.pss
                    else None,
                    "nsa": list(spec.nsa),
                },
                "remediation": spec.remediation,
            }
            parts = self.static[spec.id] = (head, tail)
        return parts

    def encode(self, result: Result) -> dict[str, Any]:
        spec = result.check
        head, tail = self._parts(spec)
        location = result.location
        data = {
            **head,
            "status": result.status.value,
            "severity": spec.severity.value,
            "subject": result.subject.as_dict(),
            "fingerprint": result.fingerprint,
            **tail,
            "message": result.message,
            "location": {"file": location.file, "line": location.line} if location else None,
            "path": result.path,
            "reason": result.reason,
        }
        if result.extra:
            data["details"] = result.extra
        return data


def report_as_dict(report: ScanReport) -> dict[str, Any]:
    framework = report.framework
    encoder = _ResultEncoder(groups_by_check(framework))
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
            "files": report.files,
            "objects": report.objects,
            "pssVersion": f"v{report.pss_version[0]}.{report.pss_version[1]}"
            if report.pss_version
            else None,
            "coverage": [
                {"kind": c.kind, "state": c.state, "detail": c.detail}
                for c in sorted(report.coverage.kinds.values(), key=lambda c: c.kind)
            ],
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
        "results": [encoder.encode(r) for r in report.results],
        "errors": [
            {"source": e.source, "line": e.line, "message": e.message} for e in report.errors
        ],
    }


class JsonRenderer(Renderer):
    name = "json"

    def render(self, report: ScanReport) -> str:
        # orjson: a large scan's report is hundreds of megabytes of JSON; the standard
        # library's encoder takes several times longer over it.
        options = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
        return orjson.dumps(report_as_dict(report), option=options).decode() + "\n"
