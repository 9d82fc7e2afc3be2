"""JUnit XML output, validated against the Jenkins/Ant junit-10.xsd (schemas/)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
import xmlschema
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeproof.model import Status
from kubeproof.reports import junit
from kubeproof.reports.junit import INPUT_SUITE, JunitRenderer, xml_text
from kubeproof.scan import ScanReport
from reports.builders import HOSTILE_NAME, mixed_report, real_report

XSD = Path(__file__).with_name("schemas") / "junit-10.xsd"


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD))


@pytest.fixture
def scan(tmp_path: Path) -> ScanReport:
    return mixed_report(tmp_path)


@pytest.fixture
def xml(scan: ScanReport) -> str:
    return JunitRenderer().render(scan)


def suites(xml: str) -> dict[str, ET.Element]:
    root = ET.fromstring(xml)
    assert root.tag == "testsuites"
    return {suite.get("id", ""): suite for suite in root.findall("testsuite")}


def test_is_valid_against_the_xsd(schema: xmlschema.XMLSchema, xml: str) -> None:
    schema.validate(xml)


@pytest.mark.parametrize("framework_id", ["soc2", "cis", "pss-baseline", "pss-restricted"])
def test_real_scans_are_valid(
    schema: xmlschema.XMLSchema, tmp_path: Path, framework_id: str
) -> None:
    schema.validate(JunitRenderer().render(real_report(tmp_path, framework_id)))


def test_the_xsd_rejects_broken_junit(schema: xmlschema.XMLSchema, xml: str) -> None:
    root = ET.fromstring(xml)
    del root.find("testsuite").attrib["name"]  # type: ignore[union-attr]
    assert not schema.is_valid(ET.tostring(root, encoding="unicode"))
    root = ET.fromstring(xml)
    ET.SubElement(root.find("testsuite/testcase"), "verdict")  # type: ignore[arg-type]
    assert not schema.is_valid(ET.tostring(root, encoding="unicode"))


def test_one_suite_per_group_in_framework_order(scan: ScanReport, xml: str) -> None:
    found = suites(xml)
    group_ids = [g.id for g in scan.framework.groups]
    assert [s for s in found if s != INPUT_SUITE] == group_ids
    for group in scan.framework.groups:
        properties = {
            p.get("name"): p.get("value") for p in found[group.id].findall("properties/property")
        }
        assert properties["framework"] == scan.framework.id
        assert properties["group"] == group.id
        assert properties["verdict"] in {"not_covered", "failing", "incomplete", "compliant"}


def test_each_suite_holds_the_results_of_its_checks(scan: ScanReport, xml: str) -> None:
    found = suites(xml)
    for group in scan.framework.groups:
        ids = {c.id for c in group.checks}
        results = [r for r in scan.results if r.check.id in ids]
        suite = found[group.id]
        cases = suite.findall("testcase")
        assert len(cases) == len(results) == int(suite.get("tests", "-1"))
        counts = Counter(r.status for r in results)
        assert int(suite.get("failures", "-1")) == counts[Status.FAIL]
        assert len(suite.findall("testcase/failure")) == counts[Status.FAIL]
        skipped = counts[Status.NOT_EVALUATED] + counts[Status.EXCEPTED]
        assert int(suite.get("skipped", "-1")) == skipped
        assert len(suite.findall("testcase/skipped")) == skipped


def test_statuses_become_failure_and_skipped(xml: str) -> None:
    cases = suites(xml)["TEST-1"].findall("testcase")
    assert {c.get("classname") for c in cases} == {"test.hand-made"}
    by_name: dict[str, list[ET.Element]] = {}
    for case in cases:
        by_name.setdefault(case.get("name", ""), []).append(case)
    (sidecar,) = by_name["Deployment/shop/web[sidecar]"]
    assert list(sidecar) == []  # a pass is a plain test case
    failed, excepted = by_name["Deployment/shop/web[app]"]
    failure = failed.find("failure")
    assert failure is not None and failure.get("type") == "high"
    assert "remediation: Nothing to do" in (failure.text or "")
    assert "field: spec.template.spec.containers[0].securityContext.privileged" in (
        failure.text or ""
    )
    skipped = excepted.find("skipped")
    assert skipped is not None
    assert skipped.get("message", "").startswith("excepted: namespace shop label")
    (not_evaluated,) = by_name["ClusterRole/admin"]
    reason = not_evaluated.find("skipped")
    assert reason is not None
    assert reason.get("message") == "not evaluated: ClusterRoleBinding forbidden (403)"


def test_hostile_text_stays_well_formed(xml: str) -> None:
    root = ET.fromstring(xml)  # would raise on a raw NUL or ESC
    names = {c.get("name") for c in root.iter("testcase")}
    assert f"ConfigMap/shop/{HOSTILE_NAME}" in names
    messages = [f.get("message", "") for f in root.iter("failure")]
    assert any("line\nbreak\ufffd\ufffd and ü" in m for m in messages)


def test_input_errors_are_errors(scan: ScanReport, xml: str) -> None:
    suite = suites(xml)[INPUT_SUITE]
    assert int(suite.get("errors", "0")) == len(scan.errors) > 0
    (case,) = suite.findall("testcase")
    error = case.find("error")
    assert error is not None and "invalid YAML" in error.get("message", "")
    assert case.get("name", "").endswith("broken.yaml:4")


def test_totals_count_each_result_once(scan: ScanReport, xml: str) -> None:
    root = ET.fromstring(xml)
    assert int(root.get("tests", "-1")) == len(scan.results) + len(scan.errors)
    assert int(root.get("failures", "-1")) == sum(r.status is Status.FAIL for r in scan.results)
    assert int(root.get("errors", "-1")) == len(scan.errors)


def test_results_outside_every_group_are_not_dropped(scan: ScanReport) -> None:
    framework = scan.framework
    scan.framework = type(framework)(**{**framework.__dict__, "groups": framework.groups[:-1]})
    found = suites(JunitRenderer().render(scan))
    assert len(found["ungrouped"].findall("testcase")) == 6


def test_xml_text_replaces_forbidden_characters() -> None:
    assert xml_text("a\x00b\x1fc\td\ne\uffff") == "a\ufffdb\ufffdc\td\ne\ufffd"


_HOSTILE_CHARACTERS = st.sampled_from(list("&<>\"'\r\n\t a\x00\x1f\x7fé\ud7ff\ufffe😀"))


@settings(max_examples=300, deadline=None)
@given(
    # Every element written with text has some.
    st.text(alphabet=_HOSTILE_CHARACTERS, min_size=1, max_size=12),
    st.text(alphabet=_HOSTILE_CHARACTERS, max_size=12),
)
def test_elements_are_escaped_exactly_as_element_tree_escapes_them(text: str, value: str) -> None:
    element = ET.Element("failure", {"message": xml_text(value)})
    element.text = xml_text(text)
    assert junit._element("failure", text, message=value) == ET.tostring(element, "unicode")
