"""Which verdicts a change can move, re-judging only those, and the diff of verdicts.

* a kind that carries a pod template (Deployment, Pod, ReplicaSet ...): the container and
  workload checks of its top owner (pods and ReplicaSets fold into their Deployment);
* an RBAC kind: the rbac checks, everywhere (a binding changes what every subject may do);
* a NetworkPolicy or a Namespace: every check, for the subjects of that namespace;
* anything else: the checks that judge that kind or need it, for all their subjects.

Periodic full rescans catch whatever these rules miss.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubeproof.agent.state import Change, ObjectCache
from kubeproof.checks.registry import Check
from kubeproof.engine import WORKLOAD_KINDS, Context, evaluate
from kubeproof.inventory import K8sObject
from kubeproof.model import CheckSpec, Result, Status, Subject
from kubeproof.redaction import redact, redact_data

RBAC_KINDS = frozenset({"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"})
NAMESPACE_WIDE_KINDS = frozenset({"NetworkPolicy", "Namespace"})
OWNER_KINDS = frozenset(WORKLOAD_KINDS)  # owners the agent watches, so will see arrive
SubjectKey = tuple[str, str, str]  # kind, namespace ("" when none), name
MAX_DIFF_ENTRIES = 100
# Never judged, changing on every write: left out of diffs.
VOLATILE_METADATA = frozenset(
    {"resourceVersion", "generation", "managedFields", "uid", "creationTimestamp"}
)
# Values of these are configuration data, not what checks judge: a diff says only that
# they changed (Secrets never carry them at all: they are read as metadata only).
OPAQUE_FIELDS = frozenset({"data", "binaryData", "stringData"})

FAILING, RESOLVED, CHANGED, DELETED = "failing", "resolved", "changed", "deleted"


def key_of(subject: Subject | K8sObject) -> SubjectKey:
    if isinstance(subject, K8sObject):
        return (subject.kind, subject.namespace or "", subject.name)
    return (subject.kind, subject.namespace or "", subject.name)


@dataclass(frozen=True)
class Plan:
    """Checks to run again and which of their subjects to keep (None: all of them)."""

    checks: frozenset[str]
    workloads: frozenset[SubjectKey] | None = None
    namespaces: frozenset[str] | None = None

    def covers(self, check_id: str, subject: Subject) -> bool:
        if check_id not in self.checks:
            return False
        if self.workloads is not None:
            return key_of(subject) in self.workloads
        if self.namespaces is not None:
            if subject.kind == "Namespace":
                return subject.name in self.namespaces
            return subject.namespace in self.namespaces or subject.kind == "Cluster"
        return True


def plan_for(change: Change, cache: ObjectCache, checks: Sequence[Check]) -> Plan | None:
    kind = change.kind
    obj = change.current
    if kind in WORKLOAD_KINDS:
        scoped = frozenset(c.spec.id for c in checks if c.spec.scope in ("container", "workload"))
        return Plan(scoped, workloads=frozenset(_owner_chain(obj, cache)))
    if kind in NAMESPACE_WIDE_KINDS:
        namespace = obj.name if kind == "Namespace" else obj.namespace or ""
        return Plan(frozenset(c.spec.id for c in checks), namespaces=frozenset({namespace}))
    selected = {c.spec.id for c in checks if kind in c.spec.kinds or kind in c.spec.needs}
    if kind in RBAC_KINDS:
        selected.update(c.spec.id for c in checks if c.spec.group == "rbac")
    return Plan(frozenset(selected)) if selected else None


def merged(plans: Iterable[Plan]) -> list[Plan]:
    """Plans that differ only in their workloads become one (pod churn in a batch)."""
    workload_plans: dict[frozenset[str], set[SubjectKey]] = {}
    others: list[Plan] = []
    for plan in plans:
        if plan.workloads is not None:
            workload_plans.setdefault(plan.checks, set()).update(plan.workloads)
        elif plan not in others:
            others.append(plan)
    return [Plan(checks, frozenset(keys)) for checks, keys in workload_plans.items()] + others


def _owner_chain(obj: K8sObject, cache: ObjectCache) -> list[SubjectKey]:
    """The subject the object is judged under, and (so that an object that now folds into
    an owner drops its own verdicts) the object's own key."""
    return [key_of(obj), judged_key(obj, cache)]


def judged_key(obj: K8sObject, cache: ObjectCache) -> SubjectKey:
    """The top owner's key; the owner's own key when it has not arrived yet."""
    top = cache.top_owner(obj)
    return cache.pending_owner(top, OWNER_KINDS) or key_of(top)


def _judged_now(obj: K8sObject, cache: ObjectCache, wanted: frozenset[SubjectKey]) -> bool:
    """A workload object belongs in the plan's inventory when its top owner is wanted and
    known: one whose owner is still on its way is judged once the owner arrives (judged
    now, it would pass for a workload of its own)."""
    top = cache.top_owner(obj)
    return key_of(top) in wanted and cache.pending_owner(top, OWNER_KINDS) is None


def evaluate_plan(
    plan: Plan, cache: ObjectCache, checks: Sequence[Check], context_of: Any
) -> list[Result]:
    """The results of the plan's checks for the plan's subjects, judged from the cache.
    `context_of(inventory)` builds the engine's Context."""
    selected = [c for c in checks if c.spec.id in plan.checks]
    if plan.workloads is not None:
        wanted = plan.workloads
        objects = [
            obj
            for obj in cache
            if obj.kind not in WORKLOAD_KINDS or _judged_now(obj, cache, wanted)
        ]
        inventory = cache.inventory(objects)
    else:
        inventory = cache.inventory()
    context: Context = context_of(inventory)
    results = evaluate(inventory, selected, context)
    return [r for r in results if plan.covers(r.check.id, r.subject)]


@dataclass(frozen=True)
class Transition:
    transition: str  # failing | resolved | changed | deleted
    fingerprint: str
    result: Result  # the new result, or the last one for resolved-by-absence and deleted
    before: Status | None
    after: Status | None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the last judgement said of one (check, subject): far smaller than its Result,
    since the agent holds one for every check on every subject."""

    check: CheckSpec
    subject: Subject
    status: Status
    message: str | None  # kept only while failing: "changed" compares it, rows quote it

    def result(self) -> Result:
        """The verdict as a result, for the row of a transition it is the last word of
        (a passing one says what the check's title says)."""
        return Result(self.check, self.status, self.subject, self.message or self.check.title)

    def says(self, check: CheckSpec, status: Status, subject: Subject, message: str | None) -> bool:
        return (
            self.check is check
            and self.status is status
            and self.message == message
            and self.subject == subject
        )


def diff_verdicts(
    plan: Plan,
    verdicts: Mapping[str, Verdict],
    fresh: Sequence[Result],
    present: Any,
) -> list[Transition]:
    """What moved between the known verdicts of the plan's slice and the fresh ones.
    `present(subject)` says whether the subject still exists (gone: deleted)."""
    old = {fp: v for fp, v in verdicts.items() if plan.covers(v.check.id, v.subject)}
    return diff_slices(old, {r.fingerprint: r for r in fresh}, present)


def diff_slices(
    old: Mapping[str, Verdict], new: Mapping[str, Result | Verdict], present: Any
) -> list[Transition]:
    """What moved between two judgements of the same slice of verdicts."""
    transitions = []
    for fingerprint, judged in new.items():
        before = old.get(fingerprint)
        before_status = before.status if before else None
        if judged.status is Status.FAIL:
            if before_status is not Status.FAIL:
                transitions.append(
                    Transition(FAILING, fingerprint, _result(judged), before_status, Status.FAIL)
                )
            elif before is not None and before.message != judged.message:
                transitions.append(
                    Transition(CHANGED, fingerprint, _result(judged), before_status, Status.FAIL)
                )
        elif before_status is Status.FAIL and judged.status is Status.PASS:
            transitions.append(
                Transition(RESOLVED, fingerprint, _result(judged), before_status, Status.PASS)
            )
    for fingerprint, gone_verdict in old.items():
        if fingerprint in new or gone_verdict.status is not Status.FAIL:
            continue
        gone = not present(gone_verdict.subject)
        transitions.append(
            Transition(
                DELETED if gone else RESOLVED,
                fingerprint,
                gone_verdict.result(),
                Status.FAIL,
                None,
            )
        )
    return transitions


def _result(judged: Result | Verdict) -> Result:
    return judged if isinstance(judged, Result) else judged.result()


def apply_verdicts(plan: Plan, verdicts: dict[str, Verdict], fresh: Sequence[Result]) -> set[str]:
    """Replace the plan's slice of the known verdicts with the fresh ones; the
    fingerprints of both (what this judgement spoke for)."""
    stale = [fp for fp, v in verdicts.items() if plan.covers(v.check.id, v.subject)]
    for fingerprint in stale:
        del verdicts[fingerprint]
    judged = verdicts_of(fresh)
    verdicts.update(judged)
    return set(stale) | judged.keys()


def verdicts_of(
    results: Iterable[Result], last: Mapping[str, Verdict] | None = None
) -> dict[str, Verdict]:
    """One verdict per fingerprint; a failure wins over any other status. Subjects are
    shared between the verdicts of one subject (many checks judge each). A verdict that
    says what the `last` judgement said is that same verdict, and fingerprints are interned
    (as the store's rows intern them): a whole-cache scan repeats nearly every verdict, and
    needs no second copy of any while the last judgement's are still held."""
    verdicts: dict[str, Verdict] = {}
    subjects: dict[Subject, Subject] = {}
    for result in results:
        fingerprint = sys.intern(result.fingerprint)
        known = verdicts.get(fingerprint)
        if known is None or (result.status is Status.FAIL and known.status is not Status.FAIL):
            failing = result.status is Status.FAIL
            message = result.message if failing else None
            said = last.get(fingerprint) if last is not None else None
            if said is None or not said.says(result.check, result.status, result.subject, message):
                subject = subjects.setdefault(result.subject, result.subject)
                said = Verdict(result.check, subject, result.status, message)
            verdicts[fingerprint] = said
    return verdicts


def judged_diff(before: K8sObject | None, after: K8sObject | None) -> list[dict[str, Any]]:
    """Leaf-by-leaf differences of what checks judge (the object without its status and
    volatile metadata), values redacted; at most MAX_DIFF_ENTRIES."""
    old = _flatten(_judged(before)) if before is not None else {}
    new = _flatten(_judged(after)) if after is not None else {}
    entries = []
    for path in sorted(old.keys() | new.keys()):
        if old.get(path, _MISSING) == new.get(path, _MISSING):
            continue
        entry: dict[str, Any] = {"path": path}
        if path in old:
            entry["before"] = _shown(path, old[path])
        if path in new:
            entry["after"] = _shown(path, new[path])
        entries.append(entry)
        if len(entries) >= MAX_DIFF_ENTRIES:
            entries.append({"path": "...", "truncated": True})
            break
    return entries


_MISSING = object()
NOT_SHOWN = "<not shown>"
# Holds a whole earlier manifest (a Secret's data, with kubectl apply): never diffed.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _judged(obj: K8sObject) -> dict[str, Any]:
    raw = {k: v for k, v in obj.raw.items() if k != "status"}
    metadata = raw.get("metadata")
    if isinstance(metadata, dict):
        raw["metadata"] = {k: v for k, v in metadata.items() if k not in VOLATILE_METADATA}
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict) and LAST_APPLIED in annotations:
            kept = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
            raw["metadata"]["annotations"] = kept
    return raw


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(data, list) and data:
        flat = {}
        for index, value in enumerate(data):
            flat.update(_flatten(value, f"{prefix}[{index}]"))
        return flat
    return {prefix: data}


def _shown(path: str, value: Any) -> Any:
    parts = path.replace("[", ".").split(".")
    if any(part in OPAQUE_FIELDS for part in parts[:2]):
        return NOT_SHOWN
    if ".env[" in path and parts[-1] == "value":
        return NOT_SHOWN  # a literal env value is never quoted, credential-like or not
    name = parts[-1] if parts and not parts[-1].endswith("]") else None
    shown = redact_data(value, name)
    return redact(shown) if isinstance(shown, str) else shown
