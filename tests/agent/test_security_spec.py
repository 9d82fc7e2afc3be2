"""The security spec an approved baseline records, and the drift check that compares a
workload with it: what counts as a change, what is never recorded, and hostile specs."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kubeproof import frameworks
from kubeproof.engine import Context, evaluate
from kubeproof.inventory import Inventory, K8sObject
from kubeproof.inventory.security_spec import (
    ApprovedBaseline,
    ApprovedBaselines,
    security_spec,
    spec_changes,
    spec_digest,
)
from kubeproof.model import Status

SECRET = "Zq8-credential-not-to-keep-5521"
DRIFT = [c for c in frameworks.load("soc2").checks if c.id == "drift.unapproved-change"]


def _deployment(**changes: Any) -> dict[str, Any]:
    container = {
        "name": "web",
        "image": "nginx:1.27",
        "env": [{"name": "DB_PASSWORD", "value": SECRET}],
        "securityContext": {"capabilities": {"drop": ["ALL"]}},
        "ports": [{"containerPort": 8080}],
    }
    container.update(changes.pop("container", {}))
    pod: dict[str, Any] = {
        "containers": [container],
        "volumes": [{"name": "creds", "secret": {"secretName": "db-credentials"}}],
    }
    pod.update(changes)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": pod}},
    }


def _spec(raw: dict[str, Any]) -> dict[str, Any]:
    (workload,) = Inventory([K8sObject.from_raw(raw)]).workloads
    return security_spec(workload)


def test_spec_keeps_what_matters_and_never_env_values_or_secret_names() -> None:
    spec = _spec(_deployment())
    assert spec["containers"]["web"]["image"] == "nginx:1.27"
    assert spec["containers"]["web"]["securityContext"] == {"capabilities": {"drop": ["ALL"]}}
    assert spec["volumes"] == {"creds": {"type": "secret"}}
    text = repr(spec)
    assert SECRET not in text and "DB_PASSWORD" not in text and "db-credentials" not in text


def test_env_and_replica_changes_are_not_drift_but_security_changes_are() -> None:
    approved = _spec(_deployment())
    quiet = _deployment(container={"env": [{"name": "DB_PASSWORD", "value": "other"}]})
    assert spec_changes(approved, _spec(quiet)) == []
    cases = {
        "containers.web.image: nginx:1.27 -> nginx:1.28": {"container": {"image": "nginx:1.28"}},
        'containers.web.securityContext.capabilities.add: (none) -> ["NET_ADMIN"]': {
            "container": {
                "securityContext": {"capabilities": {"drop": ["ALL"], "add": ["CAP_NET_ADMIN"]}}
            }
        },
        "hostNetwork: false -> true": {"hostNetwork": True},
        "volumes.host.path: (none) -> /var/run": {
            "volumes": [{"name": "host", "hostPath": {"path": "/var/run"}}]
        },
        "serviceAccount: default -> deployer": {"serviceAccountName": "deployer"},
    }
    for expected, change in cases.items():
        changes = spec_changes(approved, _spec(_deployment(**copy.deepcopy(change))))
        assert expected in changes, (expected, changes)


def test_spec_is_normalised_so_order_does_not_matter() -> None:
    one = _deployment(container={"securityContext": {"capabilities": {"drop": ["ALL", "NET_RAW"]}}})
    two = _deployment(container={"securityContext": {"capabilities": {"drop": ["NET_RAW", "ALL"]}}})
    assert spec_digest(_spec(one)) == spec_digest(_spec(two))


def _judge(raw: dict[str, Any], baselines: ApprovedBaselines | None) -> list[Any]:
    inventory = Inventory([K8sObject.from_raw(raw)])
    context = Context(inventory, cluster_name="prod", baselines=baselines)
    return evaluate(inventory, DRIFT, context)


def test_drift_check_fails_passes_and_never_passes_what_it_did_not_compare() -> None:
    approved_spec = _spec(_deployment())
    baseline = ApprovedBaseline(
        3, approved_spec, spec_digest(approved_spec), "alice", datetime.now(UTC)
    )
    approved = ApprovedBaselines({("Deployment", "shop", "web"): baseline}, frozenset({"shop"}))
    (same,) = _judge(_deployment(), approved)
    assert same.status is Status.PASS
    (changed,) = _judge(_deployment(container={"image": "evil:1"}), approved)
    assert changed.status is Status.FAIL
    assert "BL-3" in changed.message and "nginx:1.27 -> evil:1" in changed.message
    # No store consulted, or a namespace not under change control: no result at all.
    assert _judge(_deployment(), None) == []
    assert _judge(_deployment(), ApprovedBaselines({}, frozenset())) == []
    # Under change control but never approved: not evaluated, with the reason.
    (unknown,) = _judge(_deployment(), ApprovedBaselines({}, frozenset({"shop"})))
    assert unknown.status is Status.NOT_EVALUATED
    assert "no approved baseline" in unknown.message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
pod_fields = st.sampled_from(
    ["containers", "volumes", "securityContext", "hostNetwork", "serviceAccountName", "hostUsers"]
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(pod_fields, json_values, max_size=6),
    st.dictionaries(pod_fields, json_values, max_size=6),
)
def test_hostile_pod_specs_never_break_the_spec_or_the_comparison(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    specs = []
    for pod in (first, second):
        raw = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "n"},
            "spec": pod,
        }
        workloads = Inventory([K8sObject.from_raw(raw)]).workloads
        specs.extend(security_spec(w) for w in workloads)
    for spec in specs:
        assert spec_changes(spec, spec) == []
    if len(specs) == 2:
        same_digest = spec_digest(specs[0]) == spec_digest(specs[1])
        assert same_digest == (spec_changes(specs[0], specs[1]) == [])
