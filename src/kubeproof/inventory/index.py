"""The inventory: every object indexed once by kind and namespace, and the workloads in it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from kubeproof.inventory.objects import K8sObject
from kubeproof.inventory.owners import top_owner
from kubeproof.inventory.workloads import POD_SPEC_PATHS, Workload, workload_of

# Set by the API server on every namespace (immutable), so namespace selectors may use it.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True, slots=True)
class KindCoverage:
    """How completely one kind was read: listed, forbidden, not_served or error."""

    kind: str
    state: str
    detail: str = ""

    @property
    def complete(self) -> bool:
        # A kind the server does not serve has no objects: nothing was missed.
        return self.state in ("listed", "not_served")


@dataclass(slots=True)
class Coverage:
    """Which kinds a source could read. Files are complete by definition: what is in
    them is the whole input; a cluster source records each kind it tried."""

    complete_by_default: bool = True
    kinds: dict[str, KindCoverage] = field(default_factory=dict)

    def record(self, kind: str, state: str, detail: str = "") -> None:
        self.kinds[kind] = KindCoverage(kind, state, detail)

    def gap(self, kinds: Iterable[str]) -> str | None:
        """Why the given kinds were not all read, or None when they were."""
        reasons = []
        for kind in kinds:
            entry = self.kinds.get(kind)
            if entry is None:
                if not self.complete_by_default:
                    reasons.append(f"{kind} not read")
            elif not entry.complete:
                detail = f" ({entry.detail})" if entry.detail else ""
                reasons.append(f"{kind} {entry.state}{detail}")
        return "; ".join(reasons) or None


class Inventory:
    def __init__(self, objects: Iterable[K8sObject] = (), coverage: Coverage | None = None):
        self.coverage = coverage or Coverage()
        self._by_kind: dict[str, list[K8sObject]] = defaultdict(list)
        self._by_kind_namespace: dict[tuple[str, str | None], list[K8sObject]] = defaultdict(list)
        self._workloads: list[Workload] | None = None
        self._workloads_by_namespace: dict[str, list[Workload]] = {}
        self._namespace_objects: dict[str, K8sObject] = {}  # the first of each name
        for obj in objects:
            self.add(obj)

    def add(self, obj: K8sObject) -> None:
        self._by_kind[obj.kind].append(obj)
        self._by_kind_namespace[(obj.kind, obj.namespace)].append(obj)
        if obj.kind == "Namespace":
            self._namespace_objects.setdefault(obj.name, obj)
        self._workloads = None

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_kind.values())

    def __iter__(self) -> Iterator[K8sObject]:
        for objects in self._by_kind.values():
            yield from objects

    def of_kind(self, *kinds: str) -> list[K8sObject]:
        if len(kinds) == 1:
            return self._by_kind.get(kinds[0], [])
        return [obj for kind in kinds for obj in self._by_kind.get(kind, [])]

    def in_namespace(self, kind: str, namespace: str | None) -> list[K8sObject]:
        return self._by_kind_namespace.get((kind, namespace), [])

    def namespace_object(self, name: str) -> K8sObject | None:
        return self._namespace_objects.get(name)

    def namespaces(self) -> list[str]:
        """Every namespace named by a Namespace object or used by a namespaced object."""
        names = {obj.name for obj in self._by_kind.get("Namespace", [])}
        names.update(ns for (_, ns) in self._by_kind_namespace if ns is not None)
        return sorted(names)

    def namespace_labels(self, name: str) -> dict[str, str]:
        """A namespace's labels as the API server holds them: it always sets the immutable
        `kubernetes.io/metadata.name` label, which manifests rarely write out."""
        obj = self.namespace_object(name)
        return {**(obj.labels if obj else {}), NAMESPACE_NAME_LABEL: name}

    @property
    def workloads(self) -> list[Workload]:
        """Top-owner workloads: pods and ReplicaSets owned by something in the inventory
        fold into that owner (Pod -> ReplicaSet -> Deployment, Job -> CronJob)."""
        if self._workloads is None:
            self._workloads = self._resolve_workloads()
            self._workloads_by_namespace = defaultdict(list)
            for workload in self._workloads:
                self._workloads_by_namespace[workload.namespace].append(workload)
        return self._workloads

    def workloads_in(self, namespace: str) -> list[Workload]:
        self.workloads  # noqa: B018 - resolves and indexes the workloads when needed
        return self._workloads_by_namespace.get(namespace, [])

    def _resolve_workloads(self) -> list[Workload]:
        by_uid = {uid: obj for obj in self if (uid := obj.uid)}
        workloads: dict[int, Workload] = {}
        pods_of: dict[int, int] = defaultdict(int)
        for obj in self:
            workload = workload_of(obj)
            if workload is None:
                continue
            top = top_owner(obj, by_uid)
            if top is obj:
                workloads.setdefault(id(obj), workload)
            elif top.kind not in POD_SPEC_PATHS:
                # An owner that carries no pod template (a custom controller):
                # judge the pod spec, named after the object that has it.
                workloads.setdefault(id(obj), workload)
            if obj.kind == "Pod":
                pods_of[id(top)] += 1
        result = []
        for obj in self:
            key = id(obj)
            if key in workloads:
                workload = workloads[key]
                if key in pods_of:
                    workload.pod_count = pods_of[key]
                result.append(workload)
        return result
