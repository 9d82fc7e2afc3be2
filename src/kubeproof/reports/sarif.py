"""SARIF 2.1.0, for code-scanning dashboards (GitHub code scanning and other SARIF viewers).

One run. `tool.driver.rules` describes every check the framework selects, so a viewer can
explain a rule even when nothing broke it. Results:

- fail: `kind: fail`, level from the check's severity;
- not_evaluated: `kind: review`, level `none` (SARIF requires `none` for any kind but
  fail), so what could not be judged is visible instead of silently missing;
- excepted: `kind: notApplicable` with an accepted external suppression carrying the
  reason, which code-scanning dashboards show as dismissed;
- pass: left out; the run's properties carry the totals of every status.

Input errors and incompletely read kinds become `toolExecutionNotifications`.
"""

from __future__ import annotations

import copy
import io
import os
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import orjson

from kubeproof.collector import collector_paused
from kubeproof.model import CheckSpec, Fingerprints, Location, Result, Severity, Status
from kubeproof.reports.interface import Renderer
from kubeproof.reports.json import groups_by_check, status_counts
from kubeproof.scan import ScanReport
from kubeproof.sources.documents import InputError

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
INFORMATION_URI = "https://kubeproof.dev"
FINGERPRINT_KEY = "kubeproofSubject/v1"

LEVELS = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}

# GitHub ranks security alerts by this CVSS-like score: >= 9.0 critical, 7.0-8.9 high,
# 4.0-6.9 medium, 0.1-3.9 low. Each severity sits inside its band.
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "1.0",
}

# What toolExecutionNotifications can be about.
NOTIFICATIONS = [
    {
        "id": "input-error",
        "name": "InputError",
        "shortDescription": {
            "text": "Input that could not be read; its objects were not evaluated."
        },
        "defaultConfiguration": {"level": "error"},
    },
    {
        "id": "incomplete-coverage",
        "name": "IncompleteCoverage",
        "shortDescription": {
            "text": "A kind that could not be fully read; checks that need it are not evaluated."
        },
        "defaultConfiguration": {"level": "warning"},
    },
]

# Sources that are not files: no physical location can point at them.
_NOT_A_FILE = re.compile(r"^<.*>$")


def _utc(moment: datetime) -> str:
    """SARIF wants UTC with a literal Z (spec 3.9)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def rule_name(check_id: str) -> str:
    """A readable identifier as SARIF suggests (3.49.7): pss.privileged-containers ->
    PssPrivilegedContainers."""
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", check_id) if part)


def artifact_uri(file: str, base: Path) -> str | None:
    """A URI for a source file: relative to `base` with forward slashes when the file is
    under it (what code-scanning dashboards map to repository files), else a file: URI.
    None for sources that are not files (standard input)."""
    if not file or _NOT_A_FILE.match(file):
        return None
    # abspath, not resolve: a symlinked directory inside the repository stays inside it.
    path = Path(os.path.abspath(file))
    try:
        relative = path.relative_to(os.path.abspath(base))
    except ValueError:
        return path.as_uri()
    return quote(relative.as_posix())


def _physical_location(location: Location, base: Path) -> dict[str, Any] | None:
    uri = artifact_uri(location.file, base)
    if uri is None:
        return None
    physical: dict[str, Any] = {"artifactLocation": {"uri": uri}}
    if location.line is not None and location.line >= 1:
        physical["region"] = {"startLine": location.line}
    return physical


def _markdown_help(spec: CheckSpec) -> str:
    lines = [
        f"**{spec.title}**",
        "",
        spec.description,
        "",
        "**Remediation**",
        "",
        spec.remediation,
        "",
        "**SOC 2 Trust Services Criteria**",
        "",
    ]
    lines += [f"- {criterion}: {why}" for criterion, why in sorted(spec.criteria.items())]
    references = _references_text(spec)
    if references:
        lines += ["", "**References**", ""] + [f"- {line}" for line in references]
    return "\n".join(lines)


def _references_text(spec: CheckSpec) -> list[str]:
    lines = []
    if spec.cis:
        lines.append("CIS Kubernetes Benchmark v1.12: " + ", ".join(spec.cis))
    if spec.pss:
        lines.append(f"Pod Security Standards: {spec.pss.control} ({spec.pss.level})")
    lines += list(spec.nsa)
    return lines


def _plain_help(spec: CheckSpec) -> str:
    lines = [spec.remediation, "", "SOC 2 Trust Services Criteria:"]
    lines += [f"- {criterion}: {why}" for criterion, why in sorted(spec.criteria.items())]
    return "\n".join(lines)


def rule(spec: CheckSpec) -> dict[str, Any]:
    tags = ["security", "kubernetes", *(f"soc2/{c}" for c in sorted(spec.criteria))]
    tags += [f"cis/{c}" for c in spec.cis]
    if spec.pss:
        tags.append(f"pss/{spec.pss.level}")
    tags = list(dict.fromkeys(tags))  # SARIF tags are a set (uniqueItems)
    return {
        "id": spec.id,
        "name": rule_name(spec.id),
        "shortDescription": {"text": spec.title},
        "fullDescription": {"text": spec.description or spec.title},
        "help": {"text": _plain_help(spec), "markdown": _markdown_help(spec)},
        "defaultConfiguration": {"level": LEVELS[spec.severity]},
        "properties": {
            "severity": spec.severity.value,
            "security-severity": SECURITY_SEVERITY[spec.severity],
            "criteria": sorted(spec.criteria),
            "cis": list(spec.cis),
            "pss": {"control": spec.pss.control, "level": spec.pss.level} if spec.pss else None,
            "nsa": list(spec.nsa),
            "tags": tags,
        },
    }


def report_specs(report: ScanReport) -> list[CheckSpec]:
    """Every check of the framework, in catalogue order, then any other check a result
    names (so every result's ruleId has a rule)."""
    seen: dict[str, CheckSpec] = {}
    framework = report.framework
    candidates: Iterable[CheckSpec] = (
        *(c.spec for c in framework.checks),
        *(c.spec for g in framework.groups for c in g.checks),
        *(r.check for r in report.results),
    )
    for spec in candidates:
        seen.setdefault(spec.id, spec)
    return list(seen.values())


# SARIF 3.27.9: `review` = a human must judge; `notApplicable` = the rule does not hold
# this subject. Both require level `none` (3.27.10).
KINDS = {Status.FAIL: "fail", Status.NOT_EVALUATED: "review", Status.EXCEPTED: "notApplicable"}


class _Results:
    """SARIF result objects for one report. Rules, groups and each source file's physical
    location are looked up once, not once per result (a large scan has tens of thousands of
    findings in some thousands of files)."""

    def __init__(self, report: ScanReport, specs: list[CheckSpec], base: Path) -> None:
        self.specs = specs
        self.index = {spec.id: i for i, spec in enumerate(specs)}
        self.groups_of = groups_by_check(report.framework)
        self.base = base
        self.fingerprints = Fingerprints()
        self.places: dict[Location, dict[str, Any] | None] = {}

    def _physical(self, location: Location) -> dict[str, Any] | None:
        if location not in self.places:
            self.places[location] = _physical_location(location, self.base)
        return self.places[location]

    def entry(self, result: Result) -> dict[str, Any]:
        spec = result.check
        subject = result.subject
        kind = KINDS[result.status]
        logical = {
            "name": subject.container or subject.name,
            "fullyQualifiedName": str(subject),
            "kind": "resource",
        }
        location: dict[str, Any] = {"logicalLocations": [logical]}
        if result.location is not None and (physical := self._physical(result.location)):
            location = {"physicalLocation": physical, **location}
        entry: dict[str, Any] = {
            "ruleId": spec.id,
            "ruleIndex": self.index[spec.id],
            "kind": kind,
            "level": LEVELS[spec.severity] if kind == "fail" else "none",
            "message": {"text": f"{subject}: {result.message}"},
            "locations": [location],
            "partialFingerprints": {FINGERPRINT_KEY: self.fingerprints.of(result)},
            "properties": {
                "status": result.status.value,
                "severity": spec.severity.value,
                "subject": subject.as_dict(),
                "path": result.path,
                "reason": result.reason,
                "criteria": sorted(spec.criteria),
                "groups": self.groups_of.get(spec.id, []),
            },
        }
        if result.status is Status.EXCEPTED:
            entry["suppressions"] = [
                {
                    "kind": "external",
                    "status": "accepted",
                    "justification": f"excepted: {result.reason or result.message}",
                }
            ]
        return entry


def _error_notification(error: InputError, base: Path) -> dict[str, Any]:
    notification: dict[str, Any] = {
        "level": "error",
        "message": {"text": f"{error}: the objects in it were not evaluated"},
        "descriptor": {"id": "input-error"},
    }
    physical = _physical_location(Location(error.source, error.line), base)
    if physical is not None:
        notification["locations"] = [{"physicalLocation": physical}]
    return notification


def _coverage_notifications(report: ScanReport) -> list[dict[str, Any]]:
    notes = []
    for entry in sorted(report.coverage.kinds.values(), key=lambda c: c.kind):
        if entry.complete:
            continue
        detail = f" ({entry.detail})" if entry.detail else ""
        notes.append(
            {
                "level": "warning",
                "message": {
                    "text": f"{entry.kind} {entry.state}{detail}: checks that need "
                    f"{entry.kind} are not evaluated"
                },
                "descriptor": {"id": "incomplete-coverage"},
            }
        )
    return notes


def report_as_sarif(report: ScanReport, base: Path | None = None) -> dict[str, Any]:
    results = _Results(report, report_specs(report), base or Path.cwd())
    return _document(report, results, [results.entry(r) for r in _reported(report)])


def _reported(report: ScanReport) -> Iterator[Result]:
    return (r for r in report.results if r.status is not Status.PASS)


def _document(report: ScanReport, results: _Results, entries: Any) -> dict[str, Any]:
    """The SARIF log with `entries` as its run's results."""
    base = results.base
    invocation: dict[str, Any] = {
        "executionSuccessful": True,
        "startTimeUtc": _utc(report.started_at),
        "toolExecutionNotifications": [
            *(_error_notification(e, base) for e in report.errors),
            *_coverage_notifications(report),
        ],
    }
    if report.finished_at is not None:
        invocation["endTimeUtc"] = _utc(report.finished_at)
    framework = report.framework
    run = {
        "tool": {
            "driver": {
                "name": "kubeproof",
                "version": report.tool_version,
                "informationUri": INFORMATION_URI,
                "rules": [rule(spec) for spec in results.specs],
                "notifications": copy.deepcopy(NOTIFICATIONS),
            }
        },
        # Keeps uploads for different frameworks apart in code-scanning dashboards.
        "automationDetails": {"id": f"kubeproof/{framework.id}/"},
        "invocations": [invocation],
        "columnKind": "unicodeCodePoints",
        "results": entries,
        "properties": {
            "framework": {
                "id": framework.id,
                "title": framework.title,
                "reference": framework.reference,
            },
            "totals": status_counts(report.totals()),
            "objects": report.objects,
            "files": report.files,
        },
    }
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


# Stands for the results while the rest of the log is serialised around them.
_RESULTS_MARK = "kubeproof:results"
_BATCH = 100  # results written at a time: see the JSON report's batches


class SarifRenderer(Renderer):
    name = "sarif"

    def __init__(self, base: Path | None = None) -> None:
        # File URIs are made relative to this directory (the working directory by default).
        self.base = base

    def render(self, report: ScanReport) -> str:
        buffer = io.StringIO()
        self.write(report, buffer)
        return buffer.getvalue()

    def write(self, report: ScanReport, out: TextIO) -> None:
        """Streamed: the log around the results, then the results a batch at a time."""
        specs = report_specs(report)
        results = _Results(report, specs, self.base or Path.cwd())
        log = orjson.dumps(
            _document(report, results, _RESULTS_MARK), option=orjson.OPT_INDENT_2
        ).decode()
        head, _, tail = log.partition(f'"{_RESULTS_MARK}"')
        with collector_paused():  # short-lived dicts, no cycles
            out.write(head + "[")
            separator = "\n"
            reported = _reported(report)
            while batch := list(islice(reported, _BATCH)):
                lines = (orjson.dumps(results.entry(r)).decode() for r in batch)
                out.write(separator + ",\n".join(lines))
                separator = ",\n"
            out.write("\n]" + tail + "\n")
