"""Which workload an object belongs to: the one folding rule the inventory, running
images and admission share."""

from __future__ import annotations

from typing import Any

from kubeproof.inventory.objects import K8sObject
from kubeproof.inventory.owners import declared_top_owner, top_owner


def obj(
    kind: str, name: str, uid: str, *owners: tuple[str, str, str, bool], **labels: str
) -> K8sObject:
    references: list[dict[str, Any]] = [
        {"kind": k, "name": n, "uid": u, "controller": c} for k, n, u, c in owners
    ]
    metadata = {"name": name, "namespace": "shop", "uid": uid, "labels": labels}
    if references:
        metadata["ownerReferences"] = references
    return K8sObject.from_raw({"apiVersion": "v1", "kind": kind, "metadata": metadata})


DEPLOYMENT = obj("Deployment", "web", "d1")
REPLICA_SET = obj("ReplicaSet", "web-7d9f", "r1", ("Deployment", "web", "d1", True))
POD = obj(
    "Pod",
    "web-7d9f-x",
    "p1",
    ("ReplicaSet", "web-7d9f", "r1", True),
    **{"pod-template-hash": "7d9f"},
)


def test_a_pod_folds_into_the_top_controller_the_objects_know() -> None:
    known = {o.uid or "": o for o in (DEPLOYMENT, REPLICA_SET, POD)}
    assert top_owner(POD, known) is DEPLOYMENT
    assert top_owner(POD, {"r1": REPLICA_SET}) is REPLICA_SET  # the Deployment is not known
    assert top_owner(POD, {}) is POD


def test_only_a_controller_reference_counts_and_a_loop_stops() -> None:
    watcher = obj("Pod", "p", "p2", ("ReplicaSet", "web-7d9f", "r1", False))
    assert top_owner(watcher, {"r1": REPLICA_SET}) is watcher
    a = obj("ReplicaSet", "a", "a", ("ReplicaSet", "b", "b", True))
    b = obj("ReplicaSet", "b", "b", ("ReplicaSet", "a", "a", True))
    assert top_owner(a, {"a": a, "b": b}) is b


def test_the_owner_an_object_declares_by_itself() -> None:
    assert declared_top_owner(POD) == ("Deployment", "web")  # ReplicaSet NAME-HASH folded
    assert declared_top_owner(REPLICA_SET) == ("Deployment", "web")
    job_pod = obj("Pod", "backup-1-x", "p3", ("Job", "backup-1", "j1", True))
    assert declared_top_owner(job_pod) == ("Job", "backup-1")
    assert declared_top_owner(DEPLOYMENT) is None
    assert declared_top_owner(obj("Pod", "p", "p4", ("ReplicaSet", "", "r9", True))) is None
