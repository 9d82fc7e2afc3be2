"""The one engine: run checks over an inventory and produce results.

`scan` (files or a cluster), the agent and the webhook all call `evaluate`; they differ
only in where the inventory comes from and where the results go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial

from kubeproof.checks.registry import Check, NotApplicable, NotEvaluated, Violation
from kubeproof.inventory import Inventory, K8sObject, Workload
from kubeproof.model import Location, Result, Status, Subject

LATEST_PSS_VERSION = (1, 37)
PSS_LEVELS = ("privileged", "baseline", "restricted")
PSS_ENFORCE = "pod-security.kubernetes.io/enforce"
PSS_ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"


def parse_pss_version(text: str) -> tuple[int, int]:
    """`v1.N` or `latest` -> (1, N). Raises ValueError naming the text otherwise."""
    if text == "latest":
        return LATEST_PSS_VERSION
    major, _, minor = text.removeprefix("v").partition(".")
    if major != "1" or not minor.isdigit():
        raise ValueError(f"not a Pod Security Standards version: {text!r} (use v1.N or latest)")
    return (1, min(int(minor), LATEST_PSS_VERSION[1]))


@dataclass(frozen=True, slots=True)
class PssPolicy:
    level: str
    version: tuple[int, int]
    source: str  # where the policy came from, for messages


@dataclass
class Context:
    """What checks may consult besides their subject."""

    inventory: Inventory
    pss_version: tuple[int, int] = LATEST_PSS_VERSION
    # Set by the pss-* frameworks: the level asked for, which namespace labels override.
    pss_level: str | None = None
    cluster_name: str = "manifests"
    _namespace_policies: dict[str, PssPolicy] = field(default_factory=dict)

    def pss_policy(self, namespace: str) -> PssPolicy:
        """The Pod Security level and version that apply to pods in a namespace: the
        namespace's own `enforce` labels when it has them, otherwise what was asked for."""
        cached = self._namespace_policies.get(namespace)
        if cached is not None:
            return cached
        level = self.pss_level or "restricted"
        version = self.pss_version
        source = "requested"
        labels = self.inventory.namespace_labels(namespace)
        if self.pss_level is not None and labels.get(PSS_ENFORCE) in PSS_LEVELS:
            level, source = labels[PSS_ENFORCE], f"namespace {namespace} label {PSS_ENFORCE}"
            try:
                version = parse_pss_version(labels.get(PSS_ENFORCE_VERSION, "latest"))
            except ValueError:
                version = LATEST_PSS_VERSION
        policy = PssPolicy(level, version, source)
        self._namespace_policies[namespace] = policy
        return policy


def evaluate(inventory: Inventory, checks: Iterable[Check], context: Context) -> list[Result]:
    results: list[Result] = []
    for check in checks:
        results.extend(r for r in _run(check, inventory, context) if r is not None)
    return results


def _run(check: Check, inventory: Inventory, context: Context) -> Iterator[Result | None]:
    spec = check.spec
    gap = inventory.coverage.gap(spec.needs)
    if spec.scope == "container":
        for workload in inventory.workloads:
            for container in workload.containers:
                subject = workload.subject.with_container(container.name)
                yield _judge(check, subject, workload.obj, gap, container.path, workload,
                             partial(check.function, container, workload, context))
    elif spec.scope == "workload":
        for workload in inventory.workloads:
            yield from _judge_workload(check, workload, gap, context)
    elif spec.scope == "object":
        for obj in inventory.of_kind(*spec.kinds):
            yield _judge(check, obj.subject, obj, gap, None, None,
                         partial(check.function, obj, context))
    elif spec.scope == "namespace":
        for name in inventory.namespaces():
            subject = Subject("v1", "Namespace", None, name)
            yield _judge(check, subject, inventory.namespace_object(name), gap, None, None,
                         partial(check.function, name, context))
    elif spec.scope == "cluster":
        subject = Subject("", "Cluster", None, context.cluster_name)
        yield _judge(check, subject, None, gap, None, None, partial(check.function, context))


def _judge_workload(
    check: Check, workload: Workload, gap: str | None, context: Context
) -> Iterator[Result | None]:
    pss = check.spec.pss
    if pss is not None and context.pss_level is not None:
        policy = context.pss_policy(workload.namespace)
        if PSS_LEVELS.index(pss.level) > PSS_LEVELS.index(policy.level):
            yield Result(check.spec, Status.EXCEPTED, workload.subject,
                         f"not required: {policy.source} sets level {policy.level}",
                         _location(workload.obj), reason=f"{policy.source} = {policy.level}")
            return
    yield _judge(check, workload.subject, workload.obj, gap, None, workload,
                 partial(check.function, workload, context))


def _judge(
    check: Check,
    subject: Subject,
    obj: K8sObject | None,
    gap: str | None,
    prefix: str | None,
    workload: Workload | None,
    decide: Callable[[], Iterable[Violation] | None],
) -> Result | None:
    """One result for one subject; None when the check does not apply to it."""
    location = _location(obj)
    if gap is not None:
        return Result(check.spec, Status.NOT_EVALUATED, subject,
                      f"not evaluated: {gap}", location, reason=gap)
    try:
        violations = list(decide() or ())
    except NotApplicable:
        return None
    except NotEvaluated as signal:
        return Result(check.spec, Status.NOT_EVALUATED, subject, f"not evaluated: {signal}",
                      location, reason=str(signal))
    except Exception as error:  # a check must never crash a scan, nor pass what it could not judge
        reason = f"check error on this input: {type(error).__name__}: {error}"
        return Result(check.spec, Status.NOT_EVALUATED, subject, reason, location, reason=reason)
    if not violations:
        return Result(check.spec, Status.PASS, subject, check.spec.title, location)
    paths = [_full_path(v, prefix, workload) for v in violations]
    extra = {}
    if len(violations) > 1:
        extra["violations"] = [
            {"message": v.message, "path": p} for v, p in zip(violations, paths, strict=True)
        ]
    return Result(check.spec, Status.FAIL, subject, "; ".join(v.message for v in violations),
                  location, path=paths[0], extra=extra)


def _full_path(violation: Violation, prefix: str | None, workload: Workload | None) -> str | None:
    path = violation.path
    if prefix is not None:
        path = f"{prefix}.{path}" if path else prefix
    if workload is not None:
        return workload.field_path(path)
    return path


def _location(obj: K8sObject | None) -> Location | None:
    return obj.location if obj is not None else None
