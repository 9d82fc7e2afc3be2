"""SARIF 2.1.0 output, validated against the official OASIS schema (schemas/)."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from kubeproof.model import Status, finding_fingerprint
from kubeproof.reports.sarif import (
    FINGERPRINT_KEY,
    SarifRenderer,
    artifact_uri,
    report_as_sarif,
    rule_name,
)
from kubeproof.scan import ScanReport
from reports.builders import mixed_report, real_report

SCHEMA = Path(__file__).with_name("schemas") / "sarif-2.1.0.json"


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


@pytest.fixture
def scan(tmp_path: Path) -> ScanReport:
    return mixed_report(tmp_path)


@pytest.fixture
def sarif(scan: ScanReport, tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SarifRenderer(base=tmp_path).render(scan))
    return data


def run_of(sarif: dict[str, Any]) -> dict[str, Any]:
    assert len(sarif["runs"]) == 1
    run: dict[str, Any] = sarif["runs"][0]
    return run


def test_is_valid_sarif(validator: Any, sarif: dict[str, Any]) -> None:
    assert sarif["version"] == "2.1.0"
    assert [e.message for e in validator.iter_errors(sarif)] == []


@pytest.mark.parametrize("framework_id", ["soc2", "cis", "pss-baseline", "pss-restricted"])
def test_real_scans_are_valid_sarif(validator: Any, tmp_path: Path, framework_id: str) -> None:
    data = report_as_sarif(real_report(tmp_path, framework_id), tmp_path)
    assert [e.message for e in validator.iter_errors(data)] == []


def test_the_validator_rejects_broken_sarif(validator: Any, sarif: dict[str, Any]) -> None:
    broken = copy.deepcopy(sarif)
    broken["runs"][0]["results"][0]["level"] = "fatal"
    assert list(validator.iter_errors(broken))
    broken = copy.deepcopy(sarif)
    del broken["runs"][0]["tool"]["driver"]["name"]
    assert list(validator.iter_errors(broken))


def test_driver_describes_every_check_of_the_framework(
    scan: ScanReport, sarif: dict[str, Any]
) -> None:
    driver = run_of(sarif)["tool"]["driver"]
    assert driver["name"] == "kubeproof"
    assert driver["version"] == scan.tool_version
    assert driver["informationUri"].startswith("https://")
    ids = [r["id"] for r in driver["rules"]]
    assert len(ids) == len(set(ids))
    expected = {c.id for g in scan.framework.groups for c in g.checks}
    assert set(ids) == expected
    for rule in driver["rules"]:
        props = rule["properties"]
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert rule["help"]["text"] and rule["help"]["markdown"]
        assert props["criteria"] and "security" in props["tags"]
        assert 0.1 <= float(props["security-severity"]) <= 10.0
        assert set(props) >= {"criteria", "cis", "pss", "nsa", "tags"}


def test_hand_made_rule_carries_remediation_and_references(sarif: dict[str, Any]) -> None:
    rule = next(r for r in run_of(sarif)["tool"]["driver"]["rules"] if r["id"] == "test.hand-made")
    assert rule["name"] == "TestHandMade"
    assert "Nothing to do" in rule["help"]["text"]
    assert "CC6.1: A test rationale" in rule["help"]["markdown"]
    assert rule["properties"]["cis"] == ["5.2.2"]
    assert rule["properties"]["pss"] == {"control": "privileged", "level": "baseline"}
    assert rule["properties"]["security-severity"] == "8.0"
    assert rule["defaultConfiguration"]["level"] == "error"


def test_each_status_maps_to_a_sarif_kind(scan: ScanReport, sarif: dict[str, Any]) -> None:
    results = run_of(sarif)["results"]
    counts = Counter(r.status for r in scan.results)
    kinds = Counter(r["kind"] for r in results)
    assert kinds["fail"] == counts[Status.FAIL]
    assert kinds["review"] == counts[Status.NOT_EVALUATED] > 0
    assert kinds["notApplicable"] == counts[Status.EXCEPTED] > 0
    assert len(results) == len(scan.results) - counts[Status.PASS]
    assert run_of(sarif)["properties"]["totals"]["pass"] == counts[Status.PASS]
    for result in results:
        if result["kind"] == "fail":
            assert result["level"] in {"error", "warning", "note"}
        else:  # SARIF 3.27.10: any kind but fail has level none
            assert result["level"] == "none"


def test_levels_follow_severity(scan: ScanReport, sarif: dict[str, Any]) -> None:
    expected = {
        "critical": "error",
        "high": "error",
        "medium": "warning",
        "low": "note",
        "info": "note",
    }
    for result in run_of(sarif)["results"]:
        if result["kind"] == "fail":
            assert result["level"] == expected[result["properties"]["severity"]]


def test_rule_index_points_at_the_rule(sarif: dict[str, Any]) -> None:
    run = run_of(sarif)
    rules = run["tool"]["driver"]["rules"]
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_excepted_results_are_suppressed_with_the_reason(sarif: dict[str, Any]) -> None:
    excepted = [r for r in run_of(sarif)["results"] if r["kind"] == "notApplicable"]
    assert excepted
    for result in excepted:
        (suppression,) = result["suppressions"]
        assert suppression["status"] == "accepted"
        assert suppression["justification"].startswith("excepted: ")
    hand_made = next(r for r in excepted if r["ruleId"] == "test.hand-made")
    assert "enforce = baseline" in hand_made["suppressions"][0]["justification"]


def test_not_evaluated_results_say_why(sarif: dict[str, Any]) -> None:
    review = next(
        r
        for r in run_of(sarif)["results"]
        if r["kind"] == "review" and r["ruleId"] == "test.hand-made"
    )
    assert "ClusterRoleBinding forbidden (403)" in review["message"]["text"]
    assert review["properties"]["reason"] == "ClusterRoleBinding forbidden (403)"
    assert "suppressions" not in review


def test_locations_are_relative_uris_with_lines(sarif: dict[str, Any]) -> None:
    located = 0
    for result in run_of(sarif)["results"]:
        (location,) = result["locations"]
        assert location["logicalLocations"][0]["fullyQualifiedName"]
        physical = location.get("physicalLocation")
        if physical is None:
            continue
        located += 1
        uri = physical["artifactLocation"]["uri"]
        assert not uri.startswith(("/", "file:")) and "\\" not in uri and " " not in uri
        assert physical["region"]["startLine"] >= 1 if "region" in physical else True
    assert located


def test_hand_made_failure_location(sarif: dict[str, Any]) -> None:
    result = next(
        r
        for r in run_of(sarif)["results"]
        if r["ruleId"] == "test.hand-made"
        and r["kind"] == "fail"
        and r["properties"]["subject"]["kind"] == "Deployment"
    )
    (location,) = result["locations"]
    assert location["physicalLocation"] == {
        "artifactLocation": {"uri": "shop/web.yaml"},
        "region": {"startLine": 2},
    }
    logical = location["logicalLocations"][0]
    assert logical["fullyQualifiedName"] == "Deployment/shop/web[app]"
    assert logical["name"] == "app"
    assert result["message"]["text"].startswith("Deployment/shop/web[app]: ")


def test_results_without_a_file_keep_their_logical_location(sarif: dict[str, Any]) -> None:
    names = {
        r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
        for r in run_of(sarif)["results"]
        if "physicalLocation" not in r["locations"][0]
    }
    assert {"Cluster/manifests", "ClusterRole/admin"} <= names


def test_fingerprints_are_stable_per_check_and_subject(scan: ScanReport, tmp_path: Path) -> None:
    first = report_as_sarif(scan, tmp_path)["runs"][0]["results"]
    # A later scan of the same subjects, read from elsewhere, with other messages.
    other = mixed_report(tmp_path / "elsewhere")
    second = report_as_sarif(other, tmp_path)["runs"][0]["results"]
    assert [r["partialFingerprints"] for r in first] == [r["partialFingerprints"] for r in second]
    for result, source in zip(
        first, [r for r in scan.results if r.status is not Status.PASS], strict=True
    ):
        expected = finding_fingerprint(source.check.id, source.subject)
        assert result["partialFingerprints"] == {FINGERPRINT_KEY: expected}
    assert len({json.dumps(r["partialFingerprints"]) for r in first}) > 1


def test_input_errors_are_tool_execution_notifications(sarif: dict[str, Any]) -> None:
    (invocation,) = run_of(sarif)["invocations"]
    assert invocation["executionSuccessful"] is True
    assert invocation["startTimeUtc"].endswith("Z")
    notes = invocation["toolExecutionNotifications"]
    broken = [n for n in notes if n["descriptor"]["id"] == "input-error"]
    assert broken and all(n["level"] == "error" for n in broken)
    uri = broken[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "broken.yaml"
    descriptors = {d["id"] for d in run_of(sarif)["tool"]["driver"]["notifications"]}
    assert {n["descriptor"]["id"] for n in notes} <= descriptors


def test_incomplete_coverage_is_a_warning(scan: ScanReport, tmp_path: Path) -> None:
    scan.coverage.record("NetworkPolicy", "forbidden", "403 from the API server")
    scan.coverage.record("Pod", "listed")
    notes = report_as_sarif(scan, tmp_path)["runs"][0]["invocations"][0][
        "toolExecutionNotifications"
    ]
    coverage = [n for n in notes if n["descriptor"]["id"] == "incomplete-coverage"]
    assert len(coverage) == 1
    assert coverage[0]["level"] == "warning"
    assert "NetworkPolicy forbidden (403 from the API server)" in coverage[0]["message"]["text"]


def test_artifact_uris(tmp_path: Path) -> None:
    assert artifact_uri(str(tmp_path / "a b" / "c#1.yaml"), tmp_path) == "a%20b/c%231.yaml"
    assert artifact_uri("<stdin>", tmp_path) is None
    assert artifact_uri("", tmp_path) is None
    outside = artifact_uri("/elsewhere/x.yaml", tmp_path)
    assert outside == "file:///elsewhere/x.yaml"


def test_stdin_results_have_no_physical_location(scan: ScanReport, tmp_path: Path) -> None:
    data = report_as_sarif(scan, tmp_path)
    stdin = [
        r for r in data["runs"][0]["results"] if r["properties"]["subject"]["kind"] == "ConfigMap"
    ]
    assert stdin and "physicalLocation" not in stdin[0]["locations"][0]


def test_rule_names() -> None:
    assert rule_name("pss.privileged") == "PssPrivileged"
    assert rule_name("workload.image-latest-tag") == "WorkloadImageLatestTag"


def test_output_is_deterministic(scan: ScanReport, tmp_path: Path) -> None:
    renderer = SarifRenderer(base=tmp_path)
    assert renderer.render(scan) == renderer.render(scan)
