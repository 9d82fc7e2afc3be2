"""availability.* checks: replicas, disruption budgets and spreading."""

from __future__ import annotations

from typing import Any

import pytest

from checks.helpers import failing, per_subject, run, statuses
from kubeproof.checks import find
from kubeproof.engine import Context, evaluate
from kubeproof.inventory import Coverage, Inventory, K8sObject

LABELS = {"app": "web"}


def workload(
    kind: str = "Deployment",
    replicas: Any = 3,
    name: str = "web",
    pod_spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": LABELS},
        "template": {
            "metadata": {"labels": dict(LABELS)},
            "spec": pod_spec or {"containers": [{"name": "app", "image": "app:1"}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "shop"},
        "spec": spec,
    }


def hpa(
    min_replicas: Any = 2, max_replicas: Any = 10, kind: str = "Deployment", target: str = "web"
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
        "maxReplicas": max_replicas,
    }
    if min_replicas is not None:
        spec["minReplicas"] = min_replicas
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": spec,
    }


def pdb(api_version: str = "policy/v1", selector: Any = None, **spec: Any) -> dict[str, Any]:
    spec["selector"] = {"matchLabels": LABELS} if selector is None else selector
    return {
        "apiVersion": api_version,
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": spec,
    }


def statuses_of(check_id: str, kind: str, *objects: dict[str, Any]) -> list[str]:
    return [r.status.value for r in run(check_id, *objects) if r.subject.kind == kind]


# --- single replica ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "objects",
    [
        [workload(replicas=2)],
        [workload("StatefulSet", replicas=3)],
        [workload(replicas=None), hpa(min_replicas=2)],
        [workload(replicas=1), hpa(min_replicas=3)],
    ],
)
def test_redundant_workload_passes(objects: list[dict[str, Any]]) -> None:
    assert statuses(run("availability.single-replica", *objects)) == ["pass"]


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        ([workload(replicas=1)], "spec.replicas is 1"),
        ([workload("StatefulSet", replicas=None)], "spec.replicas is not set, so 1"),
        ([workload(replicas=5), hpa(min_replicas=None)], "may scale it down to 1 replica"),
        ([workload(replicas=5), hpa(min_replicas=1)], "may scale it down to 1 replica"),
    ],
)
def test_single_replica_fails(objects: list[dict[str, Any]], message: str) -> None:
    [result] = run("availability.single-replica", *objects)
    assert result.status.value == "fail"
    assert message in result.message


def test_autoscaler_of_another_workload_does_not_count() -> None:
    objects = [workload(replicas=1), hpa(target="api"), hpa(kind="StatefulSet")]
    assert statuses(run("availability.single-replica", *objects)) == ["fail"]


def test_scaled_to_zero_is_not_judged() -> None:
    assert run("availability.single-replica", workload(replicas=0)) == []


@pytest.mark.parametrize(
    "objects",
    [
        [workload(replicas="3")],
        [workload(replicas=True)],
        [workload(replicas=2), hpa(min_replicas="2")],
    ],
)
def test_malformed_replicas_are_not_evaluated(objects: list[dict[str, Any]]) -> None:
    assert statuses(run("availability.single-replica", *objects)) == ["not_evaluated"]


def test_daemonsets_are_not_judged() -> None:
    assert run("availability.single-replica", workload("DaemonSet", replicas=None)) == []


def test_unread_autoscalers_leave_replicas_unevaluated() -> None:
    coverage = Coverage(complete_by_default=False)
    coverage.record("HorizontalPodAutoscaler", "forbidden", "403")
    inventory = Inventory([K8sObject.from_raw(workload(replicas=3))], coverage)
    check = find("availability.single-replica")
    assert check is not None
    assert [
        r.status.value for r in per_subject(evaluate(inventory, [check], Context(inventory)))
    ] == ["not_evaluated"]


# --- missing PDB -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "budget",
    [
        pdb(maxUnavailable=1),
        pdb(selector={"matchExpressions": [{"key": "app", "operator": "Exists"}]}, minAvailable=1),
        pdb(selector={}, maxUnavailable=1),  # policy/v1: empty selects every pod
    ],
)
def test_replicated_workload_with_pdb_passes(budget: dict[str, Any]) -> None:
    assert statuses_of("availability.missing-pdb", "Deployment", workload(), budget) == ["pass"]


@pytest.mark.parametrize(
    "budget",
    [
        pdb(selector={"matchLabels": {"app": "api"}}, maxUnavailable=1),
        pdb("policy/v1beta1", selector={}, maxUnavailable=1),  # v1beta1: empty selected nothing
        pdb(selector={"matchLabels": "app=web"}, maxUnavailable=1),
        {**pdb(maxUnavailable=1), "metadata": {"name": "web", "namespace": "other"}},
    ],
)
def test_replicated_workload_without_matching_pdb_fails(budget: dict[str, Any]) -> None:
    [result] = failing(run("availability.missing-pdb", workload(), budget))
    assert "no PodDisruptionBudget in namespace shop selects its pods" in result.message
    assert result.path == "spec.template.metadata.labels"


def test_pdb_missing_counts_autoscaled_replicas() -> None:
    objects = [workload(replicas=None), hpa(min_replicas=1, max_replicas=4)]
    [result] = run("availability.missing-pdb", *objects)
    assert result.status.value == "fail"
    assert "runs up to 4 replicas" in result.message


@pytest.mark.parametrize(
    "objects",
    [
        [workload(replicas=1)],
        [workload(replicas=None)],
        [workload(replicas=0)],
    ],
)
def test_single_replica_workloads_need_no_pdb(objects: list[dict[str, Any]]) -> None:
    assert run("availability.missing-pdb", *objects) == []


# --- PDB blocking eviction ---------------------------------------------------------------


def pdb_statuses(*objects: dict[str, Any]) -> list[str]:
    return statuses_of("availability.pdb-blocks-eviction", "PodDisruptionBudget", *objects)


@pytest.mark.parametrize(
    "objects",
    [
        [pdb(maxUnavailable=1)],
        [pdb(maxUnavailable="10%"), workload(replicas=2)],
        [pdb(minAvailable=2), workload(replicas=3)],
        [pdb(minAvailable="50%"), workload(replicas=4)],
        [pdb(minAvailable=0)],
        [pdb("policy/v1beta1"), workload(replicas=2)],  # v1beta1 defaulted minAvailable to 1
    ],
)
def test_budget_allowing_evictions_passes(objects: list[dict[str, Any]]) -> None:
    assert pdb_statuses(*objects) == ["pass"]


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        ([pdb(maxUnavailable=0)], "spec.maxUnavailable is 0"),
        ([pdb(maxUnavailable="0%")], "spec.maxUnavailable is 0%"),
        ([pdb(minAvailable="100%")], "spec.minAvailable is 100%"),
        ([pdb()], "sets neither minAvailable nor maxUnavailable"),
        ([pdb(minAvailable=3), workload(replicas=3)], "run 3 pod(s) at their smallest scale"),
        ([pdb(minAvailable="60%"), workload(replicas=2)], "spec.minAvailable is 60%"),
        ([pdb(minAvailable=2), workload(replicas=5), hpa(min_replicas=2)], "run 2 pod(s)"),
        (
            [pdb(minAvailable=2), workload(replicas=1, name="a"), workload(replicas=1, name="b")],
            "run 2 pod(s)",
        ),
    ],
)
def test_budget_blocking_evictions_fails(objects: list[dict[str, Any]], message: str) -> None:
    [result] = [
        r
        for r in run("availability.pdb-blocks-eviction", *objects)
        if r.subject.kind == "PodDisruptionBudget"
    ]
    assert result.status.value == "fail"
    assert message in result.message


def test_count_dependent_budget_selecting_nothing_is_not_judged() -> None:
    assert pdb_statuses(pdb(minAvailable=2)) == []


@pytest.mark.parametrize(
    "objects",
    [
        [pdb(minAvailable=1, maxUnavailable=1)],
        [pdb(minAvailable="5")],
        [pdb(maxUnavailable=-1)],
        [pdb(minAvailable=2), workload("DaemonSet", replicas=None)],
    ],
)
def test_undecidable_budgets_are_not_evaluated(objects: list[dict[str, Any]]) -> None:
    assert pdb_statuses(*objects) == ["not_evaluated"]


def test_counting_pods_needs_the_pods_read() -> None:
    coverage = Coverage(complete_by_default=False)
    coverage.record("HorizontalPodAutoscaler", "listed")
    coverage.record("ReplicaSet", "listed")
    coverage.record("Pod", "forbidden", "403")
    objects = [K8sObject.from_raw(o) for o in (pdb(minAvailable=1), workload(replicas=3))]
    inventory = Inventory(objects, coverage)
    check = find("availability.pdb-blocks-eviction")
    assert check is not None
    [result] = per_subject(evaluate(inventory, [check], Context(inventory)))
    assert result.status.value == "not_evaluated"
    assert "Pod forbidden" in result.message


# --- spreading ---------------------------------------------------------------------------

CONTAINERS = [{"name": "app", "image": "app:1"}]
OWN_PODS = {"matchLabels": LABELS}


@pytest.mark.parametrize(
    "pod_spec",
    [
        {
            "containers": CONTAINERS,
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": OWN_PODS,
                }
            ],
        },
        {
            "containers": CONTAINERS,
            "affinity": {
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {"topologyKey": "topology.kubernetes.io/zone", "labelSelector": OWN_PODS}
                    ]
                }
            },
        },
        {
            "containers": CONTAINERS,
            "affinity": {
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 100,
                            "podAffinityTerm": {
                                "topologyKey": "kubernetes.io/hostname",
                                "labelSelector": OWN_PODS,
                                "namespaces": ["shop"],
                            },
                        }
                    ]
                }
            },
        },
    ],
)
def test_spread_replicas_pass(pod_spec: dict[str, Any]) -> None:
    assert statuses(run("availability.replicas-not-spread", workload(pod_spec=pod_spec))) == [
        "pass"
    ]


@pytest.mark.parametrize(
    "pod_spec",
    [
        {"containers": CONTAINERS},
        {
            "containers": CONTAINERS,
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": {"matchLabels": {"app": "db"}},
                }
            ],
        },
        {
            "containers": CONTAINERS,
            "topologySpreadConstraints": [
                {"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule", "labelSelector": OWN_PODS}
            ],
        },
        {
            "containers": CONTAINERS,
            "affinity": {
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": OWN_PODS,
                            "namespaces": ["other"],
                        }
                    ]
                }
            },
        },
        {
            "containers": CONTAINERS,
            "affinity": {
                "podAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {"topologyKey": "kubernetes.io/hostname", "labelSelector": OWN_PODS}
                    ]
                }
            },
        },
        {"containers": CONTAINERS, "affinity": "spread", "topologySpreadConstraints": "yes"},
    ],
)
def test_replicas_not_spread_fail(pod_spec: dict[str, Any]) -> None:
    [result] = run("availability.replicas-not-spread", workload(pod_spec=pod_spec))
    assert result.status.value == "fail"
    assert result.path == "spec.template.spec"


def test_single_replica_needs_no_spreading() -> None:
    assert run("availability.replicas-not-spread", workload(replicas=1)) == []
