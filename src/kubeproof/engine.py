"""The one engine: run checks over an inventory and produce results.

`scan` (files or a cluster), the agent and the webhook all call `evaluate`; they differ
only in where the inventory comes from and where the results go.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kubeproof.checks.registry import Check, NotApplicable, NotEvaluated, Violation
from kubeproof.collector import collector_paused
from kubeproof.inventory import Container, Inventory, Workload
from kubeproof.inventory.security_spec import ApprovedBaselines
from kubeproof.inventory.workloads import POD_SPEC_PATHS
from kubeproof.model import Location, Result, Status, Subject
from kubeproof.redaction import redact

T = TypeVar("T")
WORKLOAD_KINDS = tuple(POD_SPEC_PATHS)

LATEST_PSS_VERSION = (1, 37)
PSS_LEVELS = ("privileged", "baseline", "restricted")
PSS_ENFORCE = "pod-security.kubernetes.io/enforce"
PSS_ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"
# The reason of a result whose check raised: admission fails closed on it, not open.
CHECK_ERROR = "check error on this input"


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
    # Approved workload baselines, read from the evidence store (None: not consulted).
    baselines: ApprovedBaselines | None = None
    _namespace_policies: dict[str, PssPolicy] = field(default_factory=dict)
    _derived: dict[str, Any] = field(default_factory=dict)

    def derived(self, key: str, build: Callable[[Inventory], T]) -> T:
        """An index built from the inventory once per scan (policies by namespace, the
        RBAC graph ...), shared by every check that needs it."""
        if key not in self._derived:
            self._derived[key] = build(self.inventory)
        value: T = self._derived[key]
        return value

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


@collector_paused()
def evaluate(inventory: Inventory, checks: Iterable[Check], context: Context) -> list[Result]:
    """Every check over every subject in its scope. Subjects are walked once each, with all
    their checks, so that each subject's identity and location are built once."""
    scoped: dict[str, list[tuple[Check, str | None]]] = defaultdict(list)
    results: list[Result] = []
    add = results.append
    cluster = Subject("", "Cluster", None, context.cluster_name)
    for check in checks:
        scoped[check.spec.scope].append((check, inventory.coverage.gap(check.spec.needs)))
        # Subjects that could not be read are subjects nobody judged: say so once per check,
        # so that a criterion never reads compliant over a kind that was forbidden.
        unread = inventory.coverage.gap(_subject_kinds(check))
        if unread is not None:
            add(
                Result(
                    check.spec,
                    Status.NOT_EVALUATED,
                    cluster,
                    f"not evaluated for objects that could not be read: {unread}",
                    reason=unread,
                )
            )

    for workload in inventory.workloads if scoped["container"] or scoped["workload"] else ():
        subject, location = workload.subject, workload.obj.location
        for container in workload.containers:
            container_subject = subject.with_container(container.name)
            arguments = (container, workload, context)
            for check, gap in scoped["container"]:
                result = _judge(
                    check, container_subject, location, gap, container, workload, arguments
                )
                if result is not None:
                    add(result)
        for check, gap in scoped["workload"]:
            result = _judge_workload(check, workload, subject, location, gap, context)
            if result is not None:
                add(result)

    # One Subject per object, shared by its results (a report serialises it once).
    subjects: dict[int, Subject] = {}
    for check, gap in scoped["object"]:
        for obj in inventory.of_kind(*check.spec.kinds):
            subject = subjects.get(id(obj)) or subjects.setdefault(id(obj), obj.subject)
            result = _judge(check, subject, obj.location, gap, None, None, (obj, context))
            if result is not None:
                add(result)

    if scoped["namespace"]:
        for name in inventory.namespaces():
            subject = Subject("v1", "Namespace", None, name)
            namespace = inventory.namespace_object(name)
            location = namespace.location if namespace else None
            for check, gap in scoped["namespace"]:
                result = _judge(check, subject, location, gap, None, None, (name, context))
                if result is not None:
                    add(result)

    for check, gap in scoped["cluster"]:
        result = _judge(check, cluster, None, gap, None, None, (context,))
        if result is not None:
            add(result)
    return results


def _subject_kinds(check: Check) -> tuple[str, ...]:
    """The kinds whose objects are the subjects of a check."""
    scope = check.spec.scope
    if scope == "object":
        return check.spec.kinds
    if scope in ("container", "workload"):
        return WORKLOAD_KINDS
    if scope == "namespace":
        return ("Namespace",)
    return ()


def _judge_workload(
    check: Check,
    workload: Workload,
    subject: Subject,
    location: Location | None,
    gap: str | None,
    context: Context,
) -> Result | None:
    pss = check.spec.pss
    if pss is not None and context.pss_level is not None:
        policy = context.pss_policy(workload.namespace)
        if PSS_LEVELS.index(pss.level) > PSS_LEVELS.index(policy.level):
            return Result(
                check.spec,
                Status.EXCEPTED,
                subject,
                f"not required: {policy.source} sets level {policy.level}",
                location,
                reason=f"{policy.source} = {policy.level}",
            )
    return _judge(check, subject, location, gap, None, workload, (workload, context))


def _judge(
    check: Check,
    subject: Subject,
    location: Location | None,
    gap: str | None,
    container: Container | None,
    workload: Workload | None,
    arguments: tuple[Any, ...],
) -> Result | None:
    """One result for one subject; None when the check does not apply to it."""
    if gap is not None:
        return Result(
            check.spec, Status.NOT_EVALUATED, subject, f"not evaluated: {gap}", location, reason=gap
        )
    try:
        found = check.function(*arguments)
        violations = list(found) if found else ()
    except NotApplicable:
        return None
    except NotEvaluated as signal:
        return Result(
            check.spec,
            Status.NOT_EVALUATED,
            subject,
            f"not evaluated: {signal}",
            location,
            reason=str(signal),
        )
    except Exception as error:  # a check must never crash a scan, nor pass what it could not judge
        # The error text may quote the input, so it goes through redaction like any output.
        reason = f"{CHECK_ERROR}: {type(error).__name__}: {redact(str(error))}"
        return Result(check.spec, Status.NOT_EVALUATED, subject, reason, location, reason=reason)
    if not violations:
        return Result(check.spec, Status.PASS, subject, check.spec.title, location)
    prefix = container.path if container is not None else None
    paths = [_full_path(v, prefix, workload) for v in violations]
    extra = {}
    if len(violations) > 1:
        extra["violations"] = [
            {"message": v.message, "path": p} for v, p in zip(violations, paths, strict=True)
        ]
    return Result(
        check.spec,
        Status.FAIL,
        subject,
        "; ".join(v.message for v in violations),
        location,
        path=paths[0],
        extra=extra,
    )


def _full_path(violation: Violation, prefix: str | None, workload: Workload | None) -> str | None:
    path = violation.path
    if prefix is not None:
        path = f"{prefix}.{path}" if path else prefix
    if workload is not None:
        return workload.field_path(path)
    return path
