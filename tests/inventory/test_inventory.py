"""Inventory: namespaces, workloads from every pod-template kind, owner folding."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kubeproof.inventory import Inventory, K8sObject
from kubeproof.inventory.selectors import selector_matches
from kubeproof.inventory.workloads import POD_SPEC_PATHS

POD_SPEC = {
    "containers": [{"name": "app", "image": "app:1"}],
    "initContainers": [{"name": "init", "image": "init:1"}],
}


def wrap(kind: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    template = {"metadata": {"labels": {"app": "x"}}, "spec": pod_spec}
    body: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": {"name": kind.lower()}}
    if kind == "Pod":
        body["spec"] = pod_spec
    elif kind == "CronJob":
        body["spec"] = {"jobTemplate": {"spec": {"template": template}}}
    elif kind == "PodTemplate":
        body["template"] = template
    else:
        body["spec"] = {"template": template}
    return body


def test_every_pod_template_kind_yields_a_workload_with_its_containers() -> None:
    inventory = Inventory(K8sObject.from_raw(wrap(kind, POD_SPEC)) for kind in POD_SPEC_PATHS)
    workloads = {w.obj.kind: w for w in inventory.workloads}
    assert set(workloads) == set(POD_SPEC_PATHS)
    for workload in workloads.values():
        assert [c.name for c in workload.containers] == ["init", "app"]
    assert workloads["CronJob"].spec_path == "spec.jobTemplate.spec.template.spec"
    assert workloads["Pod"].spec_path == "spec"


def test_pods_fold_into_their_top_owner() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "uid": "d1"},
        "spec": {"template": {"spec": POD_SPEC}},
    }
    replicaset = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "web-1",
            "namespace": "shop",
            "uid": "r1",
            "ownerReferences": [{"uid": "d1", "controller": True}],
        },
        "spec": {"template": {"spec": POD_SPEC}},
    }
    pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"web-1-{i}",
                "namespace": "shop",
                "uid": f"p{i}",
                "ownerReferences": [{"uid": "r1", "controller": True}],
            },
            "spec": POD_SPEC,
        }
        for i in range(3)
    ]
    bare = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "debug", "namespace": "shop"},
        "spec": POD_SPEC,
    }
    inventory = Inventory(K8sObject.from_raw(o) for o in [deployment, replicaset, *pods, bare])
    found = {(w.obj.kind, w.obj.name): w.pod_count for w in inventory.workloads}
    assert found == {("Deployment", "web"): 3, ("Pod", "debug"): 1}


def test_namespaces_and_defaulting() -> None:
    inventory = Inventory(
        K8sObject.from_raw(o)
        for o in [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "a", "labels": {"x": "y"}},
            },
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "b"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "r", "namespace": "ignored"},
            },
        ]
    )
    assert inventory.namespaces() == ["a", "b", "default"]
    assert inventory.namespace_labels("a") == {"x": "y", "kubernetes.io/metadata.name": "a"}
    assert inventory.namespace_labels("absent") == {"kubernetes.io/metadata.name": "absent"}
    (defaulted,) = [o for o in inventory if o.name == "d"]
    assert defaulted.namespace_defaulted
    (role,) = inventory.of_kind("ClusterRole")
    assert role.namespace is None


def test_selectors() -> None:
    labels = {"app": "web", "tier": "front"}
    assert selector_matches({}, labels)
    assert selector_matches({"matchLabels": {"app": "web"}}, labels)
    assert not selector_matches({"matchLabels": {"app": "api"}}, labels)
    assert selector_matches(
        {
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "back"]},
                {"key": "env", "operator": "DoesNotExist"},
                {"key": "app", "operator": "NotIn", "values": ["api"]},
                {"key": "app", "operator": "Exists"},
            ]
        },
        labels,
    )
    assert not selector_matches({"matchExpressions": [{"key": "app", "operator": "Bogus"}]}, labels)
    assert not selector_matches(None, labels)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "metadata",
                    "spec",
                    "template",
                    "containers",
                    "name",
                    "namespace",
                    "labels",
                    "ownerReferences",
                    "uid",
                    "jobTemplate",
                    "image",
                    "initContainers",
                    "x",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([*sorted(POD_SPEC_PATHS), "Service", "Namespace"]), json_values)
def test_inventory_never_crashes_on_generated_objects(kind: str, body: Any) -> None:
    raw = body if isinstance(body, dict) else {"spec": body}
    raw = {**raw, "apiVersion": "v1", "kind": kind}
    inventory = Inventory([K8sObject.from_raw(raw)])
    for workload in inventory.workloads:
        for container in workload.containers:
            assert isinstance(container.name, str)
    inventory.namespaces()
