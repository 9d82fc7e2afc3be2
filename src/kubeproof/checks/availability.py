"""availability checks: redundancy of replicated workloads, and disruption budgets."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubeproof.analysis.netpol import running_workloads_in, selector_selects_everything
from kubeproof.checks.registry import NotApplicable, NotEvaluated, Violation, check
from kubeproof.inventory import Inventory, K8sObject, Workload
from kubeproof.inventory.objects import as_dict, as_list, as_str
from kubeproof.inventory.selectors import label_selector_problem, selector_matches
from kubeproof.inventory.workloads import workload_of

if TYPE_CHECKING:
    from kubeproof.engine import Context

# Kinds whose pod count is their spec.replicas (what the disruption controller reads).
_SCALED_KINDS = frozenset({"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"})
_PERCENT = re.compile(r"^(\d+)%$")


def _whole_number(value: Any) -> int | None:
    """A non-negative integer field, or None when it has another type."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _replicas(obj: K8sObject) -> int:
    """spec.replicas, which the API server defaults to 1."""
    value = obj.spec.get("replicas")
    if value is None:
        return 1
    replicas = _whole_number(value)
    if replicas is None:
        raise NotEvaluated("spec.replicas is not a whole number")
    return replicas


@dataclass(frozen=True, slots=True)
class Autoscaler:
    name: str
    min_replicas: int
    max_replicas: int


def _api_group(api_version: str) -> str:
    group, _, _ = api_version.rpartition("/")
    return group


def _targets(hpa: K8sObject, obj: K8sObject) -> bool:
    target = as_dict(hpa.spec.get("scaleTargetRef"))
    api_version = as_str(target.get("apiVersion"))
    return (
        target.get("kind") == obj.kind
        and target.get("name") == obj.name
        and (api_version is None or _api_group(api_version) == _api_group(obj.api_version))
    )


def _autoscalers(obj: K8sObject, inventory: Inventory) -> list[Autoscaler]:
    """The HorizontalPodAutoscalers that scale this object (minReplicas defaults to 1)."""
    found = []
    for hpa in inventory.in_namespace("HorizontalPodAutoscaler", obj.namespace):
        if not _targets(hpa, obj):
            continue
        raw_min = hpa.spec.get("minReplicas")
        low = 1 if raw_min is None else _whole_number(raw_min)
        high = _whole_number(hpa.spec.get("maxReplicas"))
        if low is None or high is None:
            raise NotEvaluated(
                f"HorizontalPodAutoscaler {hpa.name} has a minReplicas or "
                "maxReplicas that is not a whole number"
            )
        found.append(Autoscaler(hpa.name, low, high))
    return found


def _peak_replicas(obj: K8sObject, inventory: Inventory) -> int:
    """The most replicas it runs: spec.replicas, or what an autoscaler may scale it to.
    Zero means it was scaled down on purpose."""
    replicas = _replicas(obj)
    if replicas == 0:
        return 0
    return max([replicas, *(a.max_replicas for a in _autoscalers(obj, inventory))])


def _workload(obj: K8sObject, context: Context) -> Workload:
    """The object's pod template: the inventory's own reading of it when it is one of its
    workloads (read once per scan), else read here."""
    workloads = context.derived("availability.workloads", _workloads_by_object)
    workload = workloads.get(id(obj)) or workload_of(obj)
    if workload is None:
        raise NotEvaluated("spec.template.spec is missing or not a mapping")
    return workload


def _workloads_by_object(inventory: Inventory) -> dict[int, Workload]:
    return {id(workload.obj): workload for workload in inventory.workloads}


@check("availability.single-replica")
def single_replica(obj: K8sObject, context: Context) -> Iterator[Violation]:
    replicas = _replicas(obj)
    if replicas == 0:
        raise NotApplicable  # scaled to zero on purpose: nothing is meant to be available
    autoscalers = _autoscalers(obj, context.inventory)
    if autoscalers:
        # The autoscaler owns spec.replicas; its floor is what the workload may drop to.
        lowest = min(autoscalers, key=lambda a: a.min_replicas)
        if lowest.min_replicas < 2:
            yield Violation(
                f"HorizontalPodAutoscaler {lowest.name} may scale it down to "
                f"{lowest.min_replicas} replica(s) (spec.minReplicas)"
            )
        return
    if replicas < 2:
        written = "is 1" if obj.spec.get("replicas") is not None else "is not set, so 1"
        yield Violation(
            f"runs a single replica (spec.replicas {written}): one pod failure, "
            "eviction or rollout interrupts the service",
            "spec.replicas",
        )


def _budget_selector(pdb: K8sObject) -> dict[str, Any] | None:
    """The pods a PodDisruptionBudget guards, as a selector; None when it guards none: a
    missing or malformed selector, or an empty one under policy/v1beta1 (where empty meant
    nothing; policy/v1 made it mean every pod of the namespace)."""
    selector = pdb.spec.get("selector")
    if not isinstance(selector, dict) or label_selector_problem(selector, "selector"):
        return None
    if pdb.api_version == "policy/v1beta1" and selector_selects_everything(selector):
        return None
    return selector


def _required_label(selector: dict[str, Any]) -> tuple[str, str] | None:
    """One label a selector requires of every pod it selects, to find the pods (or the
    selectors) worth matching by; None when it requires none by matchLabels."""
    match_labels = selector.get("matchLabels")
    if not isinstance(match_labels, dict) or not match_labels:
        return None
    key, value = next(iter(match_labels.items()))
    return (key, value) if isinstance(key, str) and isinstance(value, str) else None


@dataclass(slots=True)
class _Selectors:
    """Selectors filed under the label they require (the others kept apart), so that a
    pod's labels are matched only against selectors that could select them."""

    by_label: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    others: list[dict[str, Any]] = field(default_factory=list)

    def add(self, selector: dict[str, Any]) -> None:
        label = _required_label(selector)
        if label is None:
            self.others.append(selector)
        else:
            self.by_label.setdefault(label, []).append(selector)

    def any_selects(self, labels: dict[str, str]) -> bool:
        if any(selector_matches(s, labels) for s in self.others):
            return True
        return any(
            selector_matches(s, labels)
            for item in labels.items()
            for s in self.by_label.get(item, ())
        )


def _budget_selectors_by_namespace(inventory: Inventory) -> dict[str | None, _Selectors]:
    """The selectors of the budgets that guard some pods, per namespace (once per scan)."""
    index: dict[str | None, _Selectors] = {}
    for pdb in inventory.of_kind("PodDisruptionBudget"):
        selector = _budget_selector(pdb)
        if selector is not None:
            index.setdefault(pdb.namespace, _Selectors()).add(selector)
    return index


@check("availability.missing-pdb")
def missing_pdb(obj: K8sObject, context: Context) -> Iterator[Violation]:
    peak = _peak_replicas(obj, context.inventory)
    if peak < 2:
        raise NotApplicable  # a budget cannot keep a single replica available
    labels = _workload(obj, context).pod_labels
    budgets = context.derived("pdb-selectors", _budget_selectors_by_namespace).get(obj.namespace)
    if budgets is not None and budgets.any_selects(labels):
        return
    yield Violation(
        f"runs up to {peak} replicas but no PodDisruptionBudget in namespace "
        f"{obj.namespace} selects its pods: a node drain may evict them all at once",
        "spec.template.metadata.labels",
    )


@dataclass(frozen=True, slots=True)
class Budget:
    """An IntOrString budget field: an absolute number of pods or a percentage."""

    amount: int
    percent: bool

    def of(self, pods: int) -> int:
        """Pods this budget stands for; the disruption controller rounds percentages up."""
        return math.ceil(self.amount * pods / 100) if self.percent else self.amount

    def __str__(self) -> str:
        return f"{self.amount}%" if self.percent else str(self.amount)


def _budget(value: Any, field: str) -> Budget:
    number = _whole_number(value)
    if number is not None:
        return Budget(number, percent=False)
    match = _PERCENT.match(value) if isinstance(value, str) else None
    if match is None:
        raise NotEvaluated(f"{field} is neither a whole number nor a percentage")
    return Budget(int(match.group(1)), percent=True)


def _pods_at_low_point(workload: Workload, inventory: Inventory) -> int:
    """How many pods a selected workload runs at its smallest scale."""
    obj = workload.obj
    if obj.kind == "Pod":
        return 1
    if obj.kind not in _SCALED_KINDS:
        raise NotEvaluated(
            f"it selects {obj.kind} {obj.name}, whose pod count kubeproof cannot know from its spec"
        )
    autoscalers = _autoscalers(obj, inventory)
    if autoscalers:
        return min(a.min_replicas for a in autoscalers)
    return _replicas(obj)


def _guarded_pods(pdb: K8sObject, context: Context) -> int:
    """The pods a budget guards when the workloads it selects run at their smallest scale."""
    # Without ReplicaSets, a Deployment's pods do not fold into it and would count twice.
    gap = context.inventory.coverage.gap(("Pod", "ReplicaSet", "HorizontalPodAutoscaler"))
    if gap is not None:
        raise NotEvaluated(f"counting the pods it guards needs {gap}")
    selector = _budget_selector(pdb)
    namespace = pdb.namespace or "default"
    selected = [] if selector is None else _running_selected(selector, namespace, context)
    if not selected:
        raise NotApplicable  # guards no pods: it holds up no drain
    return sum(_pods_at_low_point(w, context.inventory) for w in selected)


@dataclass(slots=True)
class _RunningWorkloads:
    """A namespace's running workloads, in order, and filed under each of their labels."""

    all: list[Workload]
    by_label: dict[tuple[str, str], list[Workload]]


def _running_selected(selector: dict[str, Any], namespace: str, context: Context) -> list[Workload]:
    """The running workloads of a namespace that a selector selects, in their order."""
    known: dict[str, _RunningWorkloads] = context.derived("availability.running", _nothing_yet)
    running = known.get(namespace)
    if running is None:
        workloads = running_workloads_in(context.inventory, namespace)
        by_label: dict[tuple[str, str], list[Workload]] = {}
        for workload in workloads:
            for item in workload.pod_labels.items():
                by_label.setdefault(item, []).append(workload)
        running = known[namespace] = _RunningWorkloads(workloads, by_label)
    label = _required_label(selector)
    candidates = running.all if label is None else running.by_label.get(label, [])
    return [w for w in candidates if selector_matches(selector, w.pod_labels)]


def _nothing_yet(_: Inventory) -> dict[str, Any]:
    return {}


@check("availability.pdb-blocks-eviction")
def pdb_blocks_eviction(obj: K8sObject, context: Context) -> Iterator[Violation]:
    raw_min, raw_max = obj.spec.get("minAvailable"), obj.spec.get("maxUnavailable")
    if raw_min is not None and raw_max is not None:
        raise NotEvaluated(
            "it sets both minAvailable and maxUnavailable, which the API server rejects"
        )
    if raw_min is None and raw_max is None:
        if obj.api_version != "policy/v1beta1":
            yield Violation(
                "sets neither minAvailable nor maxUnavailable: the disruption "
                "controller then allows no eviction of the pods it selects",
                "spec",
            )
            return
        raw_min = 1  # policy/v1beta1 defaulted minAvailable to 1
    if raw_max is not None:
        max_unavailable = _budget(raw_max, "spec.maxUnavailable")
        if max_unavailable.amount == 0:
            yield Violation(
                f"spec.maxUnavailable is {max_unavailable}: no pod it selects may "
                "ever be evicted, so node drains stall",
                "spec.maxUnavailable",
            )
        return  # any other value allows at least one eviction once its pods are healthy
    min_available = _budget(raw_min, "spec.minAvailable")
    if min_available.percent and min_available.amount >= 100:
        yield Violation(
            f"spec.minAvailable is {min_available}: no pod it selects may ever be "
            "evicted, so node drains stall",
            "spec.minAvailable",
        )
        return
    if min_available.amount == 0:
        return
    pods = _guarded_pods(obj, context)
    if min_available.of(pods) >= pods:
        yield Violation(
            f"spec.minAvailable is {min_available} and the workloads it selects run "
            f"{pods} pod(s) at their smallest scale: no eviction is allowed then, "
            "so node drains stall",
            "spec.minAvailable",
        )


def _term_spreads_own_pods(
    term: Any, namespace: str, labels: dict[str, str], inventory: Inventory
) -> bool:
    """Whether a pod (anti-)affinity or spread term counts this workload's own pods."""
    term = as_dict(term)
    if not as_str(term.get("topologyKey")):
        return False
    selector = term.get("labelSelector")
    if not isinstance(selector, dict) or label_selector_problem(selector, "labelSelector"):
        return False
    if not selector_matches(selector, labels):
        return False
    namespaces = [n for n in as_list(term.get("namespaces")) if isinstance(n, str)]
    namespace_selector = term.get("namespaceSelector")
    if not namespaces and namespace_selector is None:
        return True  # the term's own namespace
    return namespace in namespaces or selector_matches(
        namespace_selector, inventory.namespace_labels(namespace)
    )


def _spread_terms(pod_spec: dict[str, Any]) -> Iterator[Any]:
    anti_affinity = as_dict(as_dict(pod_spec.get("affinity")).get("podAntiAffinity"))
    yield from as_list(anti_affinity.get("requiredDuringSchedulingIgnoredDuringExecution"))
    for weighted in as_list(anti_affinity.get("preferredDuringSchedulingIgnoredDuringExecution")):
        yield as_dict(weighted).get("podAffinityTerm")
    yield from as_list(pod_spec.get("topologySpreadConstraints"))


@check("availability.replicas-not-spread")
def replicas_not_spread(obj: K8sObject, context: Context) -> Iterator[Violation]:
    peak = _peak_replicas(obj, context.inventory)
    if peak < 2:
        raise NotApplicable
    workload = _workload(obj, context)
    namespace = obj.namespace or "default"
    if any(
        _term_spreads_own_pods(term, namespace, workload.pod_labels, context.inventory)
        for term in _spread_terms(workload.pod_spec)
    ):
        return
    yield Violation(
        f"runs up to {peak} replicas with no topologySpreadConstraints or "
        "podAntiAffinity over its own pods: the scheduler may place them all on "
        "one node or zone",
        workload.spec_path,
    )
