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

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC
from typing import TextIO

from kubeproof.collector import collector_paused
from kubeproof.model import Fingerprints, Result, Status
from kubeproof.reports.interface import Renderer
from kubeproof.reports.json import groups_by_check
from kubeproof.scan import GroupSummary, ScanReport
from kubeproof.sources.documents import InputError

UNGROUPED_SUITE = "ungrouped"
INPUT_SUITE = "input"
DECLARATION = "<?xml version='1.0' encoding='utf-8'?>"

# XML 1.0 forbids most control characters even when escaped; hostile object names and
# messages must not make the report unreadable.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    if text.isascii() and text.isprintable():
        return text  # the common case, several times faster to recognise than to search
    return _NOT_XML_CHAR.sub("\ufffd", text)


def _escape_text(text: str) -> str:
    """As ElementTree escapes element text."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _escape_attribute(text: str) -> str:
    """As ElementTree escapes attribute values: whitespace that attribute-value
    normalisation would lose becomes character references."""
    text = _escape_text(text)
    for character, reference in (
        ('"', "&quot;"),
        ("\r", "&#13;"),
        ("\n", "&#10;"),
        ("\t", "&#09;"),
    ):
        if character in text:
            text = text.replace(character, reference)
    return text


def _attribute(key: str, value: str) -> str:
    return f' {key}="{_escape_attribute(xml_text(value))}"'


def _tag(name: str, /, end: str = ">", **attributes: str) -> str:
    """A start tag (or, with end " />", an empty element) with escaped attributes."""
    return f"<{name}{''.join(_attribute(k, v) for k, v in attributes.items())}{end}"


def _element(name: str, text: str, **attributes: str) -> str:
    return f"{_tag(name, **attributes)}{_escape_text(xml_text(text))}</{name}>"


@dataclass
class _Suite:
    id: str
    title: str
    summary: GroupSummary | None = None
    results: list[Result] = field(default_factory=list)


def _failure_text(result: Result, fingerprint: str) -> str:
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
        f"fingerprint: {fingerprint}",
    ]
    return "\n".join(lines)


_CASE = "\n    "  # a test case's indentation; what it holds is indented once more


class _Cases:
    """Test case text. A large scan has hundreds of thousands of results, each in one
    suite per group of its check, but only ~100 checks and some thousands of subjects: the
    start of each test case's tag is escaped once per check and subject."""

    def __init__(self) -> None:
        self.fingerprints = Fingerprints()
        self.checks: dict[str, str] = {}
        self.subjects: dict[int, str] = {}  # subjects live as long as the report

    def _start(self, result: Result) -> str:
        check_id, subject = result.check.id, result.subject
        classname = self.checks.get(check_id)
        if classname is None:
            classname = self.checks[check_id] = _attribute("classname", check_id)
        name = self.subjects.get(id(subject))
        if name is None:
            name = self.subjects[id(subject)] = _attribute("name", str(subject))
        return f'<testcase{classname}{name} time="0"'

    def text(self, result: Result) -> str:
        start = self._start(result)
        status = result.status
        if status is Status.PASS:
            return f"{_CASE}{start} />"
        if status is Status.FAIL:
            inner = _element(
                "failure",
                _failure_text(result, self.fingerprints.of(result)),
                type=result.check.severity.value,
                message=result.message,
            )
        else:
            kind = "not_evaluated" if status is Status.NOT_EVALUATED else "excepted"
            said = "not evaluated" if status is Status.NOT_EVALUATED else "excepted"
            inner = _tag(
                "skipped", " />", type=kind, message=f"{said}: {result.reason or result.message}"
            )
        return f"{_CASE}{start}>{_CASE}  {inner}{_CASE}</testcase>"


def _properties(values: Iterable[tuple[str, str]]) -> str:
    lines = [_tag("property", " />", name=name, value=value) for name, value in values]
    return (
        "\n    <properties>" + "".join(f"\n      {line}" for line in lines) + "\n    </properties>"
    )


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


_BATCH = 100  # test cases written at a time: see the JSON report's batches


def _write_suite(
    out: TextIO, report: ScanReport, suite: _Suite, timestamp: str, cases: _Cases
) -> None:
    results = suite.results
    start = _tag(
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
    out.write(f"\n  {start}{_properties(properties)}")
    for first in range(0, len(results), _BATCH):
        out.write("".join(cases.text(r) for r in results[first : first + _BATCH]))
    out.write("\n  </testsuite>")


def _input_suite(report: ScanReport, timestamp: str) -> str:
    errors: list[InputError] = report.errors
    start = _tag(
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
    cases = []
    for error in errors:
        where = f"{error.source}:{error.line}" if error.line else error.source
        case = _tag("testcase", classname="kubeproof.input", name=where, time="0")
        inner = _element(
            "error",
            f"{error}\nThe objects in it were not evaluated.",
            type="InputError",
            message=error.message,
        )
        cases.append(f"{_CASE}{case}{_CASE}  {inner}{_CASE}</testcase>")
    properties = _properties([("framework", report.framework.id)])
    return f"\n  {start}{properties}{''.join(cases)}\n  </testsuite>"


def _seconds(report: ScanReport) -> str:
    if report.finished_at is None:
        return "0"
    return f"{max((report.finished_at - report.started_at).total_seconds(), 0.0):.3f}"


def write_junit(report: ScanReport, out: TextIO) -> None:
    """The report as JUnit XML, streamed: a large scan has hundreds of thousands of test
    cases, and a document tree of them would take several times the scan's memory."""
    started = report.started_at
    if started.tzinfo is not None:
        started = started.astimezone(UTC).replace(tzinfo=None)
    # JUnit timestamps carry no offset; this one is UTC.
    timestamp = started.replace(microsecond=0).isoformat()
    # Totals count each result once, however many suites it appears in.
    root = _tag(
        "testsuites",
        name=f"kubeproof {report.framework.id}",
        tests=str(len(report.results) + len(report.errors)),
        failures=str(_count(report.results, Status.FAIL)),
        errors=str(len(report.errors)),
        time=_seconds(report),
    )
    out.write(f"{DECLARATION}\n{root}")
    cases = _Cases()
    for suite in _suites(report):
        _write_suite(out, report, suite, timestamp, cases)
    if report.errors:
        out.write(_input_suite(report, timestamp))
    out.write("\n</testsuites>\n")


class JunitRenderer(Renderer):
    name = "junit"

    def render(self, report: ScanReport) -> str:
        buffer = io.StringIO()
        self.write(report, buffer)
        return buffer.getvalue()

    @collector_paused()  # short-lived strings, no cycles
    def write(self, report: ScanReport, out: TextIO) -> None:
        write_junit(report, out)
