"""The agent's in-memory view of the cluster: one K8sObject per live object, per kind.

Each object is held once (the inventories built for evaluation reference the same
instances), and what is never judged is dropped on the way in: managedFields and status
always, Secret contents never arrive (Secrets are read as metadata only). What is left is
held once however many objects repeat it (agent/shared.py).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from kubeproof.agent.shared import SharedValues
from kubeproof.inventory import Coverage, Inventory, K8sObject
from kubeproof.inventory.objects import as_dict, as_list, as_str
from kubeproof.inventory.owners import top_owner
from kubeproof.sources.cluster import SOURCE

ObjectKey = tuple[str | None, str]  # namespace, name


@dataclass(frozen=True, slots=True)
class Change:
    """One object as it was before and after an event; None where it did not exist."""

    kind: str
    before: K8sObject | None
    after: K8sObject | None

    @property
    def current(self) -> K8sObject:
        obj = self.after or self.before
        assert obj is not None
        return obj


# Status is what controllers report back (a Pod's IPs, conditions, container states): no
# check reads it, and a change's judged diff leaves it out.
UNJUDGED_FIELDS = ("status",)
_SHARED = SharedValues()


def prepared(raw: dict[str, Any], kind: str, api_version: str) -> K8sObject:
    """An object as the cache keeps it (`compact`)."""
    return cached_object(compact(raw, kind, api_version))


def compact(raw: dict[str, Any], kind: str, api_version: str) -> dict[str, Any]:
    """An object's fields as the cache keeps them: kind and apiVersion filled in,
    managedFields and status gone, and every part it has in common with other objects
    shared with them. Its top level and metadata (its name, uid and version: its own) are
    its own, and not worth a place in the table."""
    metadata = raw.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
    for name in UNJUDGED_FIELDS:
        raw.pop(name, None)
    raw["kind"] = as_str(raw.get("kind")) or kind
    raw["apiVersion"] = as_str(raw.get("apiVersion")) or api_version
    shared = {}
    for key, value in raw.items():
        key = sys.intern(key)
        if key == "metadata" and isinstance(value, dict):
            shared[key] = {sys.intern(k): _SHARED.share(part) for k, part in value.items()}
        else:
            shared[key] = _SHARED.share(value)
    return shared


def cached_object(fields: dict[str, Any]) -> K8sObject:
    """The object of fields made `compact`."""
    obj = K8sObject.from_raw(fields)
    obj.extra["source"] = SOURCE
    return obj


def resource_version(obj: K8sObject) -> str:
    return as_str(obj.metadata.get("resourceVersion")) or ""


class ObjectCache:
    """Live objects by kind and (namespace, name), their uids, and per-kind coverage."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[ObjectKey, K8sObject]] = {}
        self._by_uid: dict[str, K8sObject] = {}
        self.coverage = Coverage(complete_by_default=False)

    def __len__(self) -> int:
        return sum(len(objects) for objects in self._objects.values())

    def __iter__(self) -> Iterator[K8sObject]:
        for objects in self._objects.values():
            yield from objects.values()

    def of_kind(self, kind: str) -> list[K8sObject]:
        return list(self._objects.get(kind, {}).values())

    def get(self, kind: str, namespace: str | None, name: str) -> K8sObject | None:
        return self._objects.get(kind, {}).get((namespace, name))

    def by_uid(self, uid: str) -> K8sObject | None:
        return self._by_uid.get(uid)

    def put(self, obj: K8sObject) -> Change | None:
        """Add or replace an object; None when the cache already holds this version."""
        objects = self._objects.setdefault(obj.kind, {})
        key = (obj.namespace, obj.name)
        before = objects.get(key)
        version = resource_version(obj)
        if before is not None and version and resource_version(before) == version:
            return None
        objects[key] = obj
        self._forget_uid(before)
        if obj.uid:
            self._by_uid[obj.uid] = obj
        return Change(obj.kind, before, obj)

    def remove(self, obj: K8sObject) -> Change | None:
        objects = self._objects.get(obj.kind, {})
        before = objects.pop((obj.namespace, obj.name), None)
        if before is None:
            return None
        self._forget_uid(before)
        return Change(obj.kind, before, None)

    def replace_kind(
        self, kind: str, objects: Iterable[K8sObject], state: str, detail: str = ""
    ) -> list[Change]:
        """A fresh LIST of a kind: whatever it no longer shows was deleted meanwhile."""
        self.coverage.record(kind, state, detail)
        fresh = {(obj.namespace, obj.name): obj for obj in objects}
        changes = [
            change
            for key, old in list(self._objects.get(kind, {}).items())
            if key not in fresh and (change := self.remove(old)) is not None
        ]
        changes.extend(change for obj in fresh.values() if (change := self.put(obj)) is not None)
        return changes

    def inventory(self, objects: Iterable[K8sObject] | None = None) -> Inventory:
        """An inventory over the cached objects (or a subset), with the cache's coverage."""
        return Inventory(self if objects is None else objects, coverage=self.coverage)

    def snapshot(self) -> Inventory:
        """An inventory over the objects cached now, with a copy of the coverage: later
        changes replace objects in the cache, never edit them, so it stays as it is."""
        coverage = Coverage(self.coverage.complete_by_default, dict(self.coverage.kinds))
        return Inventory(list(self), coverage=coverage)

    def top_owner(self, obj: K8sObject) -> K8sObject:
        """The controller at the top of an object's ownerReferences, as far as the cache
        knows it: a Pod folds into its ReplicaSet, which folds into its Deployment."""
        return top_owner(obj, self._by_uid)

    def pending_owner(self, obj: K8sObject, kinds: frozenset[str]) -> tuple[str, str, str] | None:
        """(kind, namespace, name) of a controller of one of `kinds` that owns `obj` but
        has not reached the cache yet: watches of different kinds are not ordered, so a
        new Pod can arrive before its ReplicaSet."""
        for ref in as_list(obj.metadata.get("ownerReferences")):
            ref = as_dict(ref)
            kind, name, uid = (
                as_str(ref.get("kind")),
                as_str(ref.get("name")),
                as_str(ref.get("uid")),
            )
            if ref.get("controller") is True and kind in kinds and name and uid:
                if uid not in self._by_uid:
                    return (kind, obj.namespace or "", name)
                return None
        return None

    def _forget_uid(self, obj: K8sObject | None) -> None:
        if obj is not None and obj.uid and self._by_uid.get(obj.uid) is obj:
            del self._by_uid[obj.uid]
