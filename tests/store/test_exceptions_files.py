"""Exceptions kept in git (`kubeproof scan --exceptions FILE`) and in object annotations:
no database needed. Hostile files give clear errors naming the file and the field."""

from __future__ import annotations

import json
import string
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_helpers import deployment

from fake_credentials import FAKES
from kubeproof.cli.main import main
from kubeproof.model import Subject
from kubeproof.reports.json import load_schema
from kubeproof.risk_acceptance import (
    ExceptionSpecError,
    Limits,
    exception_from_mapping,
    parse_date,
    parse_selector,
    parse_subject_pattern,
)

PRIVILEGED = "pss.privileged"
TODAY = datetime.now(UTC).date()
IN_A_MONTH = (TODAY + timedelta(days=30)).isoformat()
LAST_MONTH = (TODAY - timedelta(days=30)).isoformat()


def scan(
    capsys: pytest.CaptureFixture[str], *arguments: str
) -> tuple[int, dict[str, Any] | None, str]:
    code = main(["scan", *arguments, "-o", "json"])
    captured = capsys.readouterr()
    report = json.loads(captured.out) if captured.out.strip() else None
    return code, report, captured.err


def privileged(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["subject"]["name"]: r for r in report["results"] if r["check"] == PRIVILEGED}


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


EXCEPTIONS = f"""
exceptions:
  - id: EXC-GIT-1
    checks: [pss.privileged]
    subjects: [Deployment/shop/storefront]
    owner: alice
    reason: node agent needs the host
    ticket: SEC-7
    approver: ciso
    expires: {IN_A_MONTH}
  - id: EXC-GIT-OLD
    checks: ["pss.*"]
    namespaces: [shop]
    owner: bob
    reason: was temporary
    expires: {LAST_MONTH}
"""


def test_file_exceptions_apply_without_a_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBEPROOF_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    manifests = write(tmp_path, "m.yaml", deployment() + "---\n" + deployment("api", uid="c"))
    file = write(tmp_path, "exceptions.yaml", EXCEPTIONS)
    code, report, err = scan(capsys, manifests, "--exceptions", file)
    assert code == 1 and report is not None
    jsonschema.validate(report, load_schema())
    results = privileged(report)
    excepted = results["storefront"]
    assert excepted["status"] == "excepted"
    assert excepted["details"]["exception"] == {
        "id": "EXC-GIT-1",
        "source": "file",
        "origin": file,
        "owner": "alice",
        "reason": "node agent needs the host",
        "ticket": "SEC-7",
        "approver": "ciso",
        "created": None,
        "expires": IN_A_MONTH,
    }
    assert "owner alice" in excepted["reason"] and f"expires {IN_A_MONTH}" in excepted["reason"]
    # api is covered only by the expired exception: it fails, and says why.
    failing = results["api"]
    assert failing["status"] == "fail"
    assert failing["message"].endswith(f"(exception EXC-GIT-OLD expired on {LAST_MONTH})")
    assert report["summary"]["totals"]["excepted"] == 1
    assert "excepted by exception EXC-GIT-1" in err
    assert f"exception EXC-GIT-OLD expired on {LAST_MONTH}" in err
    assert not (tmp_path / "data").exists()  # nothing was recorded anywhere

    # Without the file, the same manifests fail.
    code, report, _ = scan(capsys, manifests)
    assert report is not None and privileged(report)["storefront"]["status"] == "fail"


def annotated(name: str, value: str, uid: str) -> str:
    return deployment(name, uid=uid).replace(
        f"metadata: {{name: {name},",
        f"metadata: {{annotations: {{kubeproof.io/exception: {json.dumps(value)}}}, name: {name},",
    )


def test_annotation_exceptions_apply_to_their_object_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    value = json.dumps(
        {"checks": [PRIVILEGED], "reason": "vendor chart", "expires": IN_A_MONTH, "owner": "ops"}
    )
    text = annotated("storefront", value, "a") + "---\n" + deployment("api", uid="c")
    code, report, err = scan(capsys, write(tmp_path, "m.yaml", text))
    assert code == 1 and report is not None
    assert (
        "excepted by exception annotation:Deployment/shop/storefront "
        "(annotation: Deployment/shop/storefront), owner ops" in err
    )
    results = privileged(report)
    assert results["storefront"]["status"] == "excepted"
    details = results["storefront"]["details"]["exception"]
    assert details["source"] == "annotation"
    assert details["id"] == "annotation:Deployment/shop/storefront"
    assert results["api"]["status"] == "fail"

    code, report, _ = scan(capsys, write(tmp_path, "m.yaml", text), "--no-annotation-exceptions")
    assert code == 1 and report is not None
    assert privileged(report)["storefront"]["status"] == "fail"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("not json", "not valid JSON"),
        ('{"checks": ["pss.privileged"]}', "expires is required"),
        ('{"checks": ["x"], "reason": "r", "expires": "2027-01-01"}', "owner is required"),
        ('{"checks": ["pss.privileged"], "owner": "o", "reason": "r"}', "expires is required"),
        ('{"checks": 7, "owner": "o", "reason": "r", "expires": "2027-01-01"}', "must be a list"),
        ('{"checks": ["x"], "owner": "o", "reason": "r", "expires": "soon"}', "is not a date"),
        ('{"checks": ["x"], "owner": "o", "reason": "r", "expires": "2999-01-01"}', "more than"),
        ('{"checks": ["x"], "namespaces": ["*"], "owner": "o", "reason": "r"}', "unknown field"),
        (
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
            "must be a mapping",
        ),
    ],
)
def test_malformed_annotations_are_reported_and_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, expected: str
) -> None:
    text = annotated("storefront", value, "a")
    code, report, err = scan(capsys, write(tmp_path, "m.yaml", text))
    assert code == 1 and report is not None  # the scan ran; the failure stands
    assert privileged(report)["storefront"]["status"] == "fail"
    assert "Deployment/shop/storefront annotation kubeproof.io/exception" in err
    assert expected in err and "(ignored)" in err
    assert "Traceback" not in err


HOSTILE = [
    ("empty.yaml", "", "expected a mapping with one key"),
    ("list.yaml", "- a\n- b\n", "expected a mapping with one key"),
    ("other-key.yaml", "exceptions: []\nrules: []\n", "expected a mapping with one key"),
    ("not-list.yaml", "exceptions: {a: b}\n", "exceptions must be a list"),
    ("broken.yaml", "exceptions: [\n  {id: x,\n", "not valid YAML"),
    ("tabs.yaml", "exceptions:\n\t- id: x\n", "not valid YAML"),
    ("entry-scalar.yaml", "exceptions: [7]\n", "exceptions[0]: an exception must be a mapping"),
    (
        "no-expiry.yaml",
        "exceptions:\n- {id: a, checks: [x], namespaces: [a], owner: o, reason: r}\n",
        "exceptions[0]: expires is required",
    ),
    (
        "bad-date.yaml",
        "exceptions:\n- {id: a, checks: [x], namespaces: [a], owner: o, reason: r, "
        "expires: 2027-13-01}\n",
        "exceptions[0].expires: '2027-13-01' is not a calendar date",
    ),
    (
        "number-date.yaml",
        "exceptions:\n- {id: a, checks: [x], namespaces: [a], owner: o, reason: r, "
        "expires: 20270101}\n",
        "exceptions[0].expires: 20270101 is not a date",
    ),
    (
        "no-scope.yaml",
        f"exceptions:\n- {{id: a, checks: [x], owner: o, reason: r, expires: {IN_A_MONTH}}}\n",
        "give subjects, namespaces or selector",
    ),
    (
        "no-id.yaml",
        "exceptions:\n- {checks: [x], namespaces: [a], owner: o, reason: r, "
        f"expires: {IN_A_MONTH}}}\n",
        "exceptions[0]: id is required",
    ),
    (
        "dup-id.yaml",
        "exceptions:\n"
        + f"- {{id: a, checks: [x], namespaces: [a], owner: o, reason: r, expires: {IN_A_MONTH}}}\n"
        * 2,
        "exceptions[1].id: 'a' is used twice",
    ),
    (
        "owner-type.yaml",
        "exceptions:\n- {id: a, checks: [x], namespaces: [a], owner: {x: 1}, reason: r, "
        f"expires: {IN_A_MONTH}}}\n",
        "exceptions[0].owner: must be a non-empty string",
    ),
    (
        "selector-type.yaml",
        "exceptions:\n- {id: a, checks: [x], selector: {matchLabels: [1]}, owner: o, "
        f"reason: r, expires: {IN_A_MONTH}}}\n",
        "exceptions[0].selector.matchLabels is not a mapping",
    ),
    (
        "selector-empty.yaml",
        "exceptions:\n- {id: a, checks: [x], selector: {matchLabels: {}}, owner: o, "
        f"reason: r, expires: {IN_A_MONTH}}}\n",
        "an empty selector would select every object",
    ),
    (
        "bad-subject.yaml",
        "exceptions:\n- {id: a, checks: [x], subjects: [api], owner: o, reason: r, "
        f"expires: {IN_A_MONTH}}}\n",
        "exceptions[0].subjects[0]: cannot read subject 'api'",
    ),
    (
        "too-far.yaml",
        "exceptions:\n- {id: a, checks: [x], namespaces: [a], owner: o, reason: r, "
        "expires: 2999-01-01}\n",
        "exceptions[0].expires: expiry 2999-01-01 is more than 365 days after",
    ),
    (
        "too-far-from-created.yaml",
        "exceptions:\n- {id: a, checks: [x], namespaces: [a], owner: o, reason: r, "
        "created: 2020-01-01, expires: 2021-06-01}\n",
        "more than 365 days after 2020-01-01",
    ),
    (
        "unknown-field.yaml",
        "exceptions:\n- {id: a, checks: [x], namespaces: [a], owner: o, reason: r, "
        f"expires: {IN_A_MONTH}, hidden: true}}\n",
        "exceptions[0]: unknown field 'hidden'",
    ),
    (
        "alias-bomb.yaml",
        "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n",
        "expected a mapping with one key",
    ),
    (
        "python-tag.yaml",
        "exceptions: !!python/object/apply:os.system [echo hi]\n",
        "not valid YAML",
    ),
]


@pytest.mark.parametrize(("name", "text", "expected"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_exception_files_give_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, expected: str
) -> None:
    manifests = write(tmp_path, "m.yaml", deployment())
    file = write(tmp_path, name, text)
    code, report, err = scan(capsys, manifests, "--exceptions", file)
    assert code == 2 and report is None  # refused before any report
    assert err.startswith(f"kubeproof: error: --exceptions {file}")
    assert expected in err, err
    assert "Traceback" not in err


def test_unreadable_and_binary_exception_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifests = write(tmp_path, "m.yaml", deployment())
    missing = str(tmp_path / "missing.yaml")
    code, _, err = scan(capsys, manifests, "--exceptions", missing)
    assert code == 2 and f"cannot read {missing}" in err
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    code, _, err = scan(capsys, manifests, "--exceptions", str(binary))
    assert code == 2 and "not UTF-8 text" in err
    huge = tmp_path / "huge.yaml"
    huge.write_text("exceptions: []\n" + "#" * (2 << 20))
    code, _, err = scan(capsys, manifests, "--exceptions", str(huge))
    assert code == 2 and "larger than" in err


# --- parsing, property-based ------------------------------------------------------------

NAME = st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=20)


@given(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))
def test_every_calendar_date_round_trips(day: date) -> None:
    assert parse_date(day.isoformat(), "expires") == day


@given(st.text(max_size=30))
def test_date_parsing_never_crashes(text: str) -> None:
    try:
        parsed = parse_date(text, "expires")
    except ExceptionSpecError as error:
        assert str(error).startswith("expires: ")
    else:
        assert parsed.isoformat() == text.strip()


@given(st.one_of(st.none(), st.integers(), st.floats(), st.lists(st.integers()), st.booleans()))
def test_non_string_dates_are_refused(value: Any) -> None:
    with pytest.raises(ExceptionSpecError, match="is not a date"):
        parse_date(value, "expires")


@given(NAME, NAME, NAME, st.one_of(st.none(), NAME))
def test_subject_patterns_match_the_subject_they_name(
    kind: str, namespace: str, name: str, container: str | None
) -> None:
    text = f"{kind}/{namespace}/{name}" + (f"[{container}]" if container else "")
    pattern = parse_subject_pattern(text, "subjects[0]")
    assert str(pattern) == text
    subject = Subject("v1", kind, namespace, name, container)
    assert pattern.matches(subject)
    assert not pattern.matches(Subject("v1", kind, namespace + "x", name, container))


@given(st.text(max_size=40))
def test_subject_parsing_never_crashes(text: str) -> None:
    try:
        parse_subject_pattern(text, "subjects[0]")
    except ExceptionSpecError as error:
        assert str(error).startswith("subjects[0]")


@given(st.dictionaries(NAME, NAME, min_size=1, max_size=4))
def test_selector_text_is_match_labels(labels: dict[str, str]) -> None:
    text = ",".join(f"{k}={v}" for k, v in labels.items())
    assert parse_selector(text, "--selector") == {"matchLabels": labels}


@settings(max_examples=200)
@given(
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)
        ),
        max_leaves=10,
    )
)
def test_selector_parsing_never_crashes(value: Any) -> None:
    try:
        parse_selector(value, "selector")
    except ExceptionSpecError as error:
        assert "selector" in str(error)


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.sampled_from(
            ["id", "checks", "subjects", "namespaces", "selector", "owner", "reason", "expires"]
        ),
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=12),
            st.lists(st.text(max_size=12), max_size=3),
            st.dates().map(date.isoformat),
        ),
    )
)
def test_exception_entries_never_crash(data: dict[str, Any]) -> None:
    try:
        exception_from_mapping(data, "f.yaml: exceptions[0]", source="file", limits=Limits(TODAY))
    except ExceptionSpecError as error:
        assert str(error).startswith("f.yaml: exceptions[0]")


def test_excepted_results_do_not_fail_the_build_but_are_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifests = write(tmp_path, "m.yaml", deployment())
    everything = write(
        tmp_path,
        "all.yaml",
        "exceptions:\n- {id: ALL, checks: ['*'], namespaces: [shop], owner: o, reason: r, "
        f"expires: {IN_A_MONTH}}}\n",
    )
    code, report, _ = scan(capsys, manifests, "--exceptions", everything)
    assert report is not None
    totals = report["summary"]["totals"]
    assert code == 0 and totals["fail"] == 0 and totals["excepted"] > 0
    assert main(["scan", manifests, "--exceptions", everything]) == 0
    table = capsys.readouterr().out
    assert f"{totals['excepted']} excepted" in table


def test_a_credential_pasted_into_an_exception_never_reaches_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = FAKES["github"]
    file = write(
        tmp_path,
        "exceptions.yaml",
        "exceptions:\n- {id: A, checks: [pss.privileged], namespaces: [shop], owner: o, "
        f"reason: 'works with {token.text}', ticket: '{token.text}', expires: {IN_A_MONTH}}}\n",
    )
    code, report, err = scan(capsys, write(tmp_path, "m.yaml", deployment()), "--exceptions", file)
    assert code == 1 and report is not None
    assert privileged(report)["storefront"]["status"] == "excepted"
    text = json.dumps(report) + err
    assert "works with" in text
    for secret in token.secrets:
        assert secret not in text
