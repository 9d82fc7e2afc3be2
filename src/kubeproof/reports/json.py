"""The JSON report: a documented, versioned schema (schemas/scan-report.schema.json)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from kubeproof.frameworks import Framework
from kubeproof.model import Result, Status
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
    spec = result.check
    return {
        "check": spec.id,
        "title": spec.title,
        "status": result.status.value,
        "severity": spec.severity.value,
        "subject": result.subject.as_dict(),
        "fingerprint": result.fingerprint,
        "criteria": sorted(spec.criteria),
        "groups": groups,
        "references": {
            "cis": list(spec.cis),
            "pss": {"control": spec.pss.control, "level": spec.pss.level} if spec.pss else None,
            "nsa": list(spec.nsa),
        },
        "message": result.message,
        "remediation": spec.remediation,
        "location": (
            {"file": result.location.file, "line": result.location.line}
            if result.location
            else None
        ),
        "path": result.path,
        "reason": result.reason,
        **({"details": result.extra} if result.extra else {}),
    }


def report_as_dict(report: ScanReport) -> dict[str, Any]:
    framework = report.framework
    groups_of = groups_by_check(framework)
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
        "results": [result_as_dict(r, groups_of.get(r.check.id, [])) for r in report.results],
        "errors": [
            {"source": e.source, "line": e.line, "message": e.message} for e in report.errors
        ],
    }


class JsonRenderer(Renderer):
    name = "json"

    def render(self, report: ScanReport) -> str:
        return json.dumps(report_as_dict(report), indent=2, ensure_ascii=False) + "\n"
