"""Falco's JSON alerts: parsing (with hypothesis for hostile bodies), priority → severity,
tags → criteria, and pod → workload when no cluster is at hand."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeproof.audit.falco import (
    PRIORITY_SEVERITY,
    FalcoError,
    check_for,
    criteria_for,
    detector_id,
    parse_alert,
    parse_alerts,
)
from kubeproof.audit.pod_owner import PodOwners, inferred_workload
from kubeproof.audit.receiver import falco_result
from kubeproof.model import Severity


def alert(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "hostname": "node-1",
        "output": "12:00:00.123456789: Notice A shell was spawned in a container "
        "(user=root container_id=3ad7b26 shell=bash)",
        "priority": "Notice",
        "rule": "Terminal shell in container",
        "source": "syscall",
        "tags": ["container", "maturity_stable", "mitre_execution", "shell", "T1059"],
        "time": "2026-11-28T12:00:00.123456789Z",
        "output_fields": {
            "container.id": "3ad7b26",
            "container.name": "app",
            "container.image.repository": "registry.example/shop",
            "k8s.ns.name": "shop",
            "k8s.pod.name": "web-7d9f8b6c4d-x2x5z",
            "proc.name": "bash",
            "evt.time": 1795867200123456789,
        },
    }
    data.update(changes)
    return data


def test_an_alert_parses_into_its_fields() -> None:
    parsed = parse_alert(alert())
    assert parsed.rule == "Terminal shell in container"
    assert parsed.severity is Severity.LOW
    assert parsed.time == pytest.approx(1795867200.123456)
    assert (parsed.namespace, parsed.pod, parsed.container_name) == (
        "shop",
        "web-7d9f8b6c4d-x2x5z",
        "app",
    )
    assert parsed.detector_id == "falco.terminal-shell-in-container"


@pytest.mark.parametrize(
    ("priority", "severity"),
    [
        ("Emergency", Severity.CRITICAL),
        ("Alert", Severity.CRITICAL),
        ("Critical", Severity.CRITICAL),
        ("Error", Severity.HIGH),
        ("Warning", Severity.MEDIUM),
        ("Notice", Severity.LOW),
        ("Informational", Severity.INFO),
        ("Debug", Severity.INFO),
        ("warning", Severity.MEDIUM),  # falcosidekick lower-cases
    ],
)
def test_priority_maps_to_severity(priority: str, severity: Severity) -> None:
    assert parse_alert(alert(priority=priority)).severity is severity


def test_tags_add_criteria_and_cc72_is_always_there() -> None:
    assert set(criteria_for(())) == {"CC7.2"}
    assert set(criteria_for(("mitre_privilege_escalation",))) == {"CC7.2", "CC6.1", "CC6.3"}
    assert set(criteria_for(("mitre_exfiltration", "container"))) == {"CC7.2", "CC6.7"}
    check = check_for("Write below etc", Severity.HIGH, ("filesystem", "mitre_persistence"))
    assert check.id == "falco.write-below-etc" and set(check.criteria) == {"CC7.2", "CC6.8"}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rule", None, "field rule"),
        ("rule", "  ", "field rule"),
        ("priority", "Severe", "field priority"),
        ("time", "yesterday", "field time"),
        ("time", "2026-11-28T12:00:00", "time zone"),
        ("output_fields", [1], "field output_fields"),
        ("tags", "shell", "field tags"),
        ("output", 7, "field output"),
    ],
)
def test_a_bad_field_is_named(field: str, value: Any, message: str) -> None:
    with pytest.raises(FalcoError, match=message):
        parse_alert(alert(**{field: value}))


def test_bodies_hold_an_alert_an_array_or_json_lines() -> None:
    one = orjson.dumps(alert())
    assert len(parse_alerts(one)) == 1
    assert len(parse_alerts(orjson.dumps([alert(), alert(rule="Other")]))) == 2
    lines = parse_alerts(one + b"\n" + b"{oops\n" + one + b"\n")
    assert [isinstance(v, FalcoError) for v in lines] == [False, True, False]
    with pytest.raises(FalcoError, match="not JSON"):
        parse_alerts(b"Warning shell spawned")
    with pytest.raises(FalcoError, match="JSON str"):
        parse_alerts(b'"text"')


def test_the_output_is_redacted_and_the_workload_inferred() -> None:
    parsed = parse_alert(alert(output="curl -H 'Authorization: Bearer abcdef0123456789abcdef'"))
    result = falco_result(parsed, PodOwners(None))
    assert "abcdef0123456789abcdef" not in result.message
    assert result.subject.kind == "Deployment" and result.subject.name == "web"
    assert result.subject.container == "app"
    evidence = result.extra["evidence"]
    assert evidence["workloadInferred"] is True
    assert "inferred from the pod name" in evidence["workloadNote"]
    assert result.check.severity is Severity.LOW and "CC6.8" in result.check.criteria


def test_an_alert_without_a_pod_attaches_to_its_host() -> None:
    parsed = parse_alert(alert(output_fields={"k8s.ns.name": "<NA>", "k8s.pod.name": "<NA>"}))
    result = falco_result(parsed, PodOwners(None))
    assert (result.subject.kind, result.subject.name) == ("Node", "node-1")


@pytest.mark.parametrize(
    ("pod", "kind", "name"),
    [
        ("web-7d9f8b6c4d-x2x5z", "Deployment", "web"),
        ("my-api-v2-5b6c7d8f9-k7w2q", "Deployment", "my-api-v2"),
        ("job-abcde", "Pod", "job-abcde"),
        ("backup-28391234-xk2vd", "CronJob", "backup"),
        ("db-0", "StatefulSet", "db"),
        ("node-exporter-x2x5z", "Pod", "node-exporter-x2x5z"),
        ("debug", "Pod", "debug"),
    ],
)
def test_pod_names_imply_their_owner(pod: str, kind: str, name: str) -> None:
    found = inferred_workload("ns", pod)
    assert (found.subject.kind, found.subject.name, found.inferred) == (kind, name, True)
    assert pod in found.note


# --- hostile input ----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_give_alerts_or_a_falco_error(body: bytes) -> None:
    try:
        values = parse_alerts(body)
    except FalcoError as error:
        assert body.decode("utf-8", "replace")[:40] not in str(error) or len(body) < 3
        return
    for value in values:
        if not isinstance(value, FalcoError):
            with contextlib.suppress(FalcoError):
                parse_alert(value)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(alert())), json_values))
def test_any_json_object_gives_an_alert_or_a_falco_error(overrides: dict[str, Any]) -> None:
    data = {**alert(), **overrides}
    try:
        parsed = parse_alert(json.loads(json.dumps(data)))
    except FalcoError:
        return
    assert parsed.severity is PRIORITY_SEVERITY[parsed.priority.lower()]
    assert parsed.detector_id.startswith("falco.")
    falco_result(parsed, PodOwners(None))  # never raises either


@settings(max_examples=200, deadline=None)
@given(
    st.text(min_size=1, max_size=80).filter(str.strip),
    st.sampled_from(sorted(PRIORITY_SEVERITY)),
    st.lists(st.text(max_size=30), max_size=5),
)
def test_valid_alerts_round_trip(rule: str, priority: str, tags: list[str]) -> None:
    body = orjson.dumps(alert(rule=rule, priority=priority.title(), tags=tags))
    [value] = parse_alerts(body)
    assert not isinstance(value, FalcoError)
    parsed = parse_alert(value)
    assert parsed.rule == rule.strip() and parsed.severity is PRIORITY_SEVERITY[priority]
    assert detector_id(rule) == parsed.detector_id
