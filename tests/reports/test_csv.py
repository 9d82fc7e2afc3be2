"""CSV output: one row per result, RFC 4180, and no formula injection."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeproof.model import Status, finding_fingerprint
from kubeproof.reports.csv import COLUMNS, FORMULA_PREFIXES, CsvRenderer, field, neutralise
from kubeproof.scan import ScanReport
from reports.builders import HOSTILE_MESSAGE, HOSTILE_NAME, mixed_report

# The published column order: a change here breaks every spreadsheet built on the file.
EXPECTED_COLUMNS = [
    "result_id",
    "framework",
    "scanned_at",
    "check",
    "title",
    "severity",
    "status",
    "subject",
    "api_version",
    "kind",
    "namespace",
    "name",
    "container",
    "message",
    "reason",
    "field_path",
    "file",
    "line",
    "criteria",
    "groups",
    "cis",
    "pss_control",
    "pss_level",
    "nsa",
    "remediation",
]


@pytest.fixture
def scan(tmp_path: Path) -> ScanReport:
    return mixed_report(tmp_path)


@pytest.fixture
def text(scan: ScanReport) -> str:
    return CsvRenderer().render(scan)


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_header_is_the_published_column_order(text: str) -> None:
    assert text.split("\r\n", 1)[0] == ",".join(EXPECTED_COLUMNS)
    assert list(COLUMNS) == EXPECTED_COLUMNS


def test_one_row_per_result_of_every_status(scan: ScanReport, text: str) -> None:
    parsed = rows(text)
    assert len(parsed) == len(scan.results)
    assert Counter(r["status"] for r in parsed) == Counter(r.status.value for r in scan.results)
    assert {r["status"] for r in parsed} == {s.value for s in Status}
    for row, result in zip(parsed, scan.results, strict=True):
        assert row["check"] == result.check.id
        assert row["result_id"] == finding_fingerprint(result.check.id, result.subject)


def test_rfc4180_line_ends_and_quoting(text: str) -> None:
    assert text.endswith("\r\n")
    # Every record ends in CRLF; a bare LF only occurs inside a quoted field.
    records = list(csv.reader(io.StringIO(text, newline="")))
    assert all(len(record) == len(EXPECTED_COLUMNS) for record in records)
    assert '"container ""app"", field env: -2+3, @SUM(A1), line\nbreak' in text


def test_fields_round_trip(scan: ScanReport, text: str) -> None:
    failed = next(
        r
        for r in rows(text)
        if r["check"] == "test.hand-made" and r["status"] == "fail" and r["kind"] == "Deployment"
    )
    assert failed["message"] == HOSTILE_MESSAGE
    assert failed["subject"] == "Deployment/shop/web[app]"
    assert failed["container"] == "app"
    assert failed["line"] == "2"
    assert failed["field_path"] == "spec.template.spec.containers[0].securityContext.privileged"
    assert failed["criteria"] == "CC6.1; CC7.1"
    assert failed["groups"] == "TEST-1"
    assert failed["pss_control"] == "privileged"
    excepted = next(
        r for r in rows(text) if r["status"] == "excepted" and r["check"] == "test.hand-made"
    )
    assert excepted["reason"].startswith("namespace shop label")
    cluster = next(r for r in rows(text) if r["kind"] == "Cluster")
    assert cluster["file"] == "" and cluster["line"] == "" and cluster["namespace"] == ""


def test_formula_cells_are_neutralised(text: str) -> None:
    parsed = rows(text)
    for row in parsed:
        for cell in row.values():
            assert not cell.startswith(FORMULA_PREFIXES), cell
    hostile = next(r for r in parsed if r["kind"] == "ConfigMap")
    assert hostile["name"] == "'" + HOSTILE_NAME
    assert hostile["message"] == "'+cmd|' /C calc'!A0"
    assert hostile["subject"] == f"ConfigMap/shop/{HOSTILE_NAME}"  # not at the cell start


@pytest.mark.parametrize(
    "cell, expected",
    [
        ("=1+2", "'=1+2"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("safe=1", "safe=1"),
        ("", ""),
        ("'=x", "'=x"),
    ],
)
def test_neutralise(cell: str, expected: str) -> None:
    assert neutralise(cell) == expected


@given(st.text())
def test_no_text_can_start_a_formula(cell: str) -> None:
    result = neutralise(cell)
    assert not result.startswith(FORMULA_PREFIXES)
    assert result.removeprefix("'") == cell or result == cell


def test_empty_scan_is_just_the_header(scan: ScanReport) -> None:
    scan.results = []
    assert CsvRenderer().render(scan) == ",".join(EXPECTED_COLUMNS) + "\r\n"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(alphabet=st.sampled_from(list(',"\r\n\t =+-@a é')), max_size=12), max_size=6)
)
def test_fields_are_quoted_exactly_as_the_csv_module_quotes_them(cells: list[str]) -> None:
    expected = io.StringIO(newline="")
    csv.writer(expected, dialect="excel", lineterminator="\r\n").writerow(
        [neutralise(c) for c in [*cells, "end"]]
    )
    assert ",".join(field(c) for c in [*cells, "end"]) + "\r\n" == expected.getvalue()
