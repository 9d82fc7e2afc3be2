"""Which workload an object belongs to: the controller at the top of its
ownerReferences. A scan files a Pod under its Deployment (Pod -> ReplicaSet ->
Deployment) and a Job's pods under its CronJob; everything that folds objects into their
workload (the inventory, running images, the agent's cache, admission) asks here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeproof.inventory.objects import K8sObject, as_dict, as_list, as_str


def controller_ref(obj: K8sObject) -> dict[str, Any] | None:
    """The ownerReference that names the object's controller (at most one has
    `controller: true`), or None."""
    for ref in as_list(obj.metadata.get("ownerReferences")):
        ref = as_dict(ref)
        if ref.get("controller") is True:
            return ref
    return None


def top_owner(obj: K8sObject, by_uid: Mapping[str, K8sObject]) -> K8sObject:
    """The controller at the top of `obj`'s ownerReferences among the objects `by_uid`
    knows; `obj` itself when its controller is not known. A loop of references stops
    where it would come round again."""
    seen = {id(obj)}
    current = obj
    while True:
        owner = _known_controller(current, by_uid)
        if owner is None or id(owner) in seen:
            return current
        seen.add(id(owner))
        current = owner


def _known_controller(obj: K8sObject, by_uid: Mapping[str, K8sObject]) -> K8sObject | None:
    # Every reference marked controller is tried: the API server allows one, a manifest
    # file may hold more, and the first one known is the one a scan folds into.
    for ref in as_list(obj.metadata.get("ownerReferences")):
        ref = as_dict(ref)
        uid = as_str(ref.get("uid"))
        if ref.get("controller") is True and uid is not None and uid in by_uid:
            return by_uid[uid]
    return None


def declared_top_owner(obj: K8sObject) -> tuple[str, str] | None:
    """(kind, name) of the workload a scan would file `obj` under, as far as the object
    itself shows it (nothing else is known, as in an admission request): its controller,
    and a ReplicaSet named DEPLOYMENT-HASH (the pod's pod-template-hash label) folded into
    its Deployment. None for an object nobody owns."""
    ref = controller_ref(obj)
    if ref is None:
        return None
    kind, name = as_str(ref.get("kind")) or "", as_str(ref.get("name")) or ""
    if not kind or not name:
        return None
    template_hash = obj.labels.get("pod-template-hash")
    if kind == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
        return ("Deployment", name[: -len(template_hash) - 1])
    return (kind, name)
