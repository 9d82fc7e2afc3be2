"""admission.namespace-pod-security-enforced."""

from __future__ import annotations

import pytest

from checks.helpers import run, statuses

CHECK = "admission.namespace-pod-security-enforced"
POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: team}\nspec: {containers: []}\n"


def namespace(labels: str) -> str:
    return f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: team, labels: {{{labels}}}}}\n"


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ("pod-security.kubernetes.io/enforce: restricted", "pass"),
        ("pod-security.kubernetes.io/enforce: baseline", "pass"),
        ("pod-security.kubernetes.io/enforce: privileged", "fail"),
        ("pod-security.kubernetes.io/warn: restricted", "fail"),
        ("", "fail"),
    ],
)
def test_enforce_label(labels: str, expected: str) -> None:
    assert statuses(run(CHECK, namespace(labels), POD)) == [expected]


def test_namespace_object_missing_is_not_evaluated() -> None:
    (result,) = run(CHECK, POD)
    assert result.status.value == "not_evaluated"
    assert "not in the input" in (result.reason or "")


def test_namespace_without_workloads_is_not_judged() -> None:
    assert run(CHECK, namespace("")) == []
