"""The JSON report against its published schema (schemas/scan-report.schema.json)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from kubeproof.model import Status
from kubeproof.reports.json import (
    SCHEMA_ID,
    SCHEMA_VERSION,
    JsonRenderer,
    load_schema,
    report_as_dict,
)
from reports.builders import mixed_report, real_report

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = jsonschema.Draft202012Validator


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = load_schema()
    VALIDATOR.check_schema(schema)
    return VALIDATOR(schema, format_checker=VALIDATOR.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Shared by the tests of this module: copy before changing it."""
    scan = mixed_report(tmp_path_factory.mktemp("scan"))
    data: dict[str, Any] = json.loads(JsonRenderer().render(scan))
    return data


def errors_of(validator: jsonschema.protocols.Validator, data: Any) -> list[str]:
    return [error.message for error in validator.iter_errors(data)]


def test_report_with_every_status_is_valid(validator: Any, report: dict[str, Any]) -> None:
    assert {r["status"] for r in report["results"]} == {s.value for s in Status}
    assert errors_of(validator, report) == []


@pytest.mark.parametrize("framework_id", ["soc2", "cis", "pss-baseline", "pss-restricted"])
def test_real_scan_of_every_framework_is_valid(
    validator: Any, tmp_path: Path, framework_id: str
) -> None:
    data = report_as_dict(real_report(tmp_path, framework_id))
    assert errors_of(validator, data) == []
    assert data["errors"], "the broken manifest must be reported"
    assert all(g["counts"].keys() == {s.value for s in Status} for g in data["summary"]["groups"])


def test_schema_identity_matches_the_renderer() -> None:
    schema = load_schema()
    assert schema["$id"] == SCHEMA_ID
    assert schema["properties"]["$schema"]["const"] == SCHEMA_ID
    assert re.fullmatch(schema["properties"]["schemaVersion"]["pattern"], SCHEMA_VERSION)


def _broken(report: dict[str, Any], mutate: str) -> dict[str, Any]:
    broken = copy.deepcopy(report)
    result = broken["results"][0]
    if mutate == "no results":
        del broken["results"]
    elif mutate == "unknown status":
        result["status"] = "ok"
    elif mutate == "unknown severity":
        result["severity"] = "urgent"
    elif mutate == "subject without name":
        del result["subject"]["name"]
    elif mutate == "criteria not a list":
        result["criteria"] = "CC6.1"
    elif mutate == "not a criterion":
        result["criteria"] = ["SOC2"]
    elif mutate == "pss level":
        result["references"]["pss"] = {"control": "privileged", "level": "privileged"}
    elif mutate == "line zero":
        result["location"] = {"file": "a.yaml", "line": 0}
    elif mutate == "missing reason":
        del result["reason"]
    elif mutate == "unknown top-level key":
        broken["extra"] = True
    elif mutate == "other major version":
        broken["schemaVersion"] = "2.0"
    elif mutate == "totals missing a status":
        del broken["summary"]["totals"]["not_evaluated"]
    elif mutate == "verdict":
        broken["summary"]["groups"][0]["verdict"] = "green"
    return broken


@pytest.mark.parametrize(
    "mutate",
    [
        "no results",
        "unknown status",
        "unknown severity",
        "subject without name",
        "criteria not a list",
        "not a criterion",
        "pss level",
        "line zero",
        "missing reason",
        "unknown top-level key",
        "other major version",
        "totals missing a status",
        "verdict",
    ],
)
def test_schema_rejects_a_broken_report(
    validator: Any, report: dict[str, Any], mutate: str
) -> None:
    assert errors_of(validator, report) == []
    assert errors_of(validator, _broken(report, mutate)) != []


def _described(node: Any, where: str = "#") -> Iterator[str]:
    """Every property schema that has neither a description nor a $ref to a described one."""
    if isinstance(node, dict):
        for name, child in (node.get("properties") or {}).items():
            if "description" not in child and "$ref" not in child:
                yield f"{where}/properties/{name}"
        for name, child in (node.get("$defs") or {}).items():
            if "description" not in child:
                yield f"{where}/$defs/{name}"
        for key, child in node.items():
            yield from _described(child, f"{where}/{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _described(child, f"{where}/{index}")


def test_every_field_is_described() -> None:
    assert list(_described(load_schema())) == []


def test_documented_example_is_valid(validator: Any) -> None:
    text = (ROOT / "docs" / "json-schema.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, re.DOTALL)
    assert blocks, "docs/json-schema.md must hold a JSON example"
    example = json.loads(blocks[0])
    assert errors_of(validator, example) == []
    assert {r["status"] for r in example["results"]} == {s.value for s in Status}


def test_results_carry_every_documented_field(report: dict[str, Any]) -> None:
    required = set(load_schema()["$defs"]["result"]["required"])
    assert required >= {
        "check",
        "title",
        "status",
        "severity",
        "subject",
        "criteria",
        "references",
        "message",
        "remediation",
        "location",
        "path",
        "reason",
    }
    for result in report["results"]:
        assert required <= result.keys()


def test_fingerprint_is_stable_and_per_subject(tmp_path: Path) -> None:
    first = report_as_dict(mixed_report(tmp_path / "a"))["results"]
    second = report_as_dict(mixed_report(tmp_path / "b"))["results"]
    assert [r["fingerprint"] for r in first] == [r["fingerprint"] for r in second]
    # Different (check, subject) pairs never share a fingerprint.
    pairs = {
        (r["check"], json.dumps(r["subject"], sort_keys=True)): r["fingerprint"] for r in first
    }
    assert len(set(pairs.values())) == len(pairs)


def test_streamed_results_equal_the_encoded_results(tmp_path: Path) -> None:
    """The renderer splices pre-serialised parts; it must say exactly what the encoder says."""
    scan = mixed_report(tmp_path)
    streamed = json.loads(JsonRenderer().render(scan))
    assert streamed["results"] == report_as_dict(scan)["results"]
    assert any(r.get("details") for r in streamed["results"]) or all(
        not r.extra for r in scan.results
    )
