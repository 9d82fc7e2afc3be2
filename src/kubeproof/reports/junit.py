"""JUnit XML, for CI test reports: one test suite per group of the framework (a SOC 2
criterion, a CIS recommendation or a Pod Security control), one test case per result.

- fail -> <failure> (type = severity), with what, where and how to fix it;
- not_evaluated -> <skipped> with the reason, so a green build never hides missing
  evidence;
- excepted -> <skipped message="excepted: reason">;
- input errors -> an `input` suite of <error> test cases: what could not be read was not
  judged.

A result whose check evidences several criteria appears in each of their suites, as the
same finding evidences each criterion. Written to the widely used Jenkins/Ant dialect
(junit-10.xsd), which Jenkins, GitLab, Azure DevOps and most CI viewers read.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC

from kubeproof.model import Result, Status
from kubeproof.reports.interface import Renderer
from kubeproof.reports.json import groups_by_check
from kubeproof.scan import GroupSummary, ScanReport
from kubeproof.sources.documents import InputError

UNGROUPED_SUITE = "ungrouped"
INPUT_SUITE = "input"

# XML 1.0 forbids most control characters even when escaped; hostile object names and
# messages must not make the report unreadable.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    return _NOT_XML_CHAR.sub("\ufffd", text)


@dataclass
class _Suite:
    id: str
    title: str
    summary: GroupSummary | None = None
    results: list[Result] = field(default_factory=list)


def _element(parent: ET.Element, tag: str, **attributes: str) -> ET.Element:
    return ET.SubElement(parent, tag, {k: xml_text(v) for k, v in attributes.items()})


def _failure_text(result: Result) -> str:
    spec = result.check
    lines = [
        result.message,
        "",
        f"check: {spec.id} ({spec.title})",
        f"subject: {result.subject}",
        f"severity: {spec.severity.value}",
    ]
    if result.location is not None:
        where = result.location.file
        if result.location.line is not None:
            where += f":{result.location.line}"
        lines.append(f"location: {where}")
    if result.path:
        lines.append(f"field: {result.path}")
    for violation in result.extra.get("violations", []):
        if isinstance(violation, dict):
            lines.append(f"- {violation.get('message')} ({violation.get('path') or '-'})")
    lines += [
        f"remediation: {spec.remediation}",
        f"criteria: {', '.join(sorted(spec.criteria))}",
        f"fingerprint: {result.fingerprint}",
    ]
    return "\n".join(lines)


def _testcase(suite: ET.Element, result: Result) -> None:
    case = _element(
        suite, "testcase", classname=result.check.id, name=str(result.subject), time="0"
    )
    status = result.status
    if status is Status.FAIL:
        failure = _element(
            case, "failure", type=result.check.severity.value, message=result.message
        )
        failure.text = xml_text(_failure_text(result))
    elif status is Status.NOT_EVALUATED:
        _element(
            case,
            "skipped",
            type="not_evaluated",
            message=f"not evaluated: {result.reason or result.message}",
        )
    elif status is Status.EXCEPTED:
        _element(
            case, "skipped", type="excepted", message=f"excepted: {result.reason or result.message}"
        )


def _properties(suite: ET.Element, values: Iterable[tuple[str, str]]) -> None:
    properties = _element(suite, "properties")
    for name, value in values:
        _element(properties, "property", name=name, value=value)


def _suites(report: ScanReport) -> list[_Suite]:
    summaries = {s.id: s for s in report.summary()}
    suites = {g.id: _Suite(g.id, g.title, summaries.get(g.id)) for g in report.framework.groups}
    members = groups_by_check(report.framework)
    ungrouped = _Suite(UNGROUPED_SUITE, "Checks in no group of this framework")
    for result in report.results:
        for group_id in members.get(result.check.id, []):
            suites[group_id].results.append(result)
        if result.check.id not in members:
            ungrouped.results.append(result)
    return [*suites.values(), *([ungrouped] if ungrouped.results else [])]


def _count(results: list[Result], *statuses: Status) -> int:
    return sum(1 for r in results if r.status in statuses)


def _add_suite(root: ET.Element, report: ScanReport, suite: _Suite, timestamp: str) -> None:
    results = suite.results
    element = _element(
        root,
        "testsuite",
        name=f"{suite.id} {suite.title}".strip(),
        id=suite.id,
        package=report.framework.id,
        tests=str(len(results)),
        failures=str(_count(results, Status.FAIL)),
        errors="0",
        skipped=str(_count(results, Status.NOT_EVALUATED, Status.EXCEPTED)),
        time="0",
        timestamp=timestamp,
    )
    properties = [
        ("framework", report.framework.id),
        ("framework.title", report.framework.title),
        ("group", suite.id),
        ("tool.version", report.tool_version),
    ]
    if suite.summary is not None:
        properties += [("verdict", suite.summary.verdict), ("checks", str(suite.summary.checks))]
    _properties(element, properties)
    for result in results:
        _testcase(element, result)


def _add_input_suite(root: ET.Element, report: ScanReport, timestamp: str) -> None:
    errors: list[InputError] = report.errors
    suite = _element(
        root,
        "testsuite",
        name=f"{INPUT_SUITE} Input that could not be read",
        id=INPUT_SUITE,
        package=report.framework.id,
        tests=str(len(errors)),
        failures="0",
        errors=str(len(errors)),
        skipped="0",
        time="0",
        timestamp=timestamp,
    )
    _properties(suite, [("framework", report.framework.id)])
    for error in errors:
        where = f"{error.source}:{error.line}" if error.line else error.source
        case = _element(suite, "testcase", classname="kubeproof.input", name=where, time="0")
        failure = _element(case, "error", type="InputError", message=error.message)
        failure.text = xml_text(f"{error}\nThe objects in it were not evaluated.")


def _seconds(report: ScanReport) -> str:
    if report.finished_at is None:
        return "0"
    return f"{max((report.finished_at - report.started_at).total_seconds(), 0.0):.3f}"


def report_as_junit(report: ScanReport) -> ET.Element:
    started = report.started_at
    if started.tzinfo is not None:
        started = started.astimezone(UTC).replace(tzinfo=None)
    # JUnit timestamps carry no offset; this one is UTC.
    timestamp = started.replace(microsecond=0).isoformat()
    suites = _suites(report)
    # Totals count each result once, however many suites it appears in.
    root = ET.Element(
        "testsuites",
        {
            "name": xml_text(f"kubeproof {report.framework.id}"),
            "tests": str(len(report.results) + len(report.errors)),
            "failures": str(_count(report.results, Status.FAIL)),
            "errors": str(len(report.errors)),
            "time": _seconds(report),
        },
    )
    for suite in suites:
        _add_suite(root, report, suite, timestamp)
    if report.errors:
        _add_input_suite(root, report, timestamp)
    return root


class JunitRenderer(Renderer):
    name = "junit"

    def render(self, report: ScanReport) -> str:
        root = report_as_junit(report)
        ET.indent(root)
        return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
