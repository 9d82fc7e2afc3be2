"""One admission decision: the admitted object becomes a one-object inventory, the one
engine judges it with the policy's checks, and the policy's mode turns results into an
answer (deny, warn, record or nothing)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubeproof.admission.images import image_signature_check, image_source_check
from kubeproof.admission.policy import Policy
from kubeproof.admission.review import AdmissionRequest, answer
from kubeproof.admission.signatures import SignatureVerifier
from kubeproof.checks import Check
from kubeproof.engine import CHECK_ERROR, WORKLOAD_KINDS, Context, evaluate
from kubeproof.images.errors import ImageError
from kubeproof.images.reference import parse_registry
from kubeproof.inventory import Coverage, Inventory, K8sObject
from kubeproof.inventory.objects import as_dict
from kubeproof.inventory.owners import declared_top_owner
from kubeproof.inventory.workloads import Workload, workload_of
from kubeproof.model import Result, Status, Subject
from kubeproof.risk_acceptance import RiskException, apply_exceptions

JUDGED_OPERATIONS = frozenset({"CREATE", "UPDATE"})
JUDGED_SUBRESOURCES = frozenset({"", "ephemeralcontainers"})

NamespaceLabels = Callable[[str], dict[str, str] | None]
# The exceptions in force now (from the evidence store, refreshed in the background).
CurrentExceptions = Callable[[], Sequence[RiskException]]
# A rule's outcome for one request, worst first: what a rule did when it judged several
# containers is the worst of them.
RULE_OUTCOMES = ("fail", "not_evaluated", "excepted", "pass")


@dataclass(frozen=True)
class RuleOutcome:
    """One rule judged for one request: fail, not_evaluated, excepted (with the exception
    that excepted it) or pass."""

    check_id: str
    outcome: str
    exception_id: str | None = None


@dataclass(frozen=True)
class Finding:
    check_id: str
    title: str
    message: str
    path: str | None
    remediation: str

    def text(self, with_fix: bool = True) -> str:
        where = f" (field {self.path})" if self.path else ""
        fix = f" Fix: {self.remediation}" if with_fix and self.remediation else ""
        return f"[{self.check_id}] {self.message}{where}.{fix}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    mode: str  # enforce | warn | audit | off, or "-" when no mode applied
    outcome: str  # allowed | denied | warned | audited | exempt | skipped | unjudgeable
    reason: str
    findings: tuple[Finding, ...] = ()
    unjudged: tuple[str, ...] = ()  # "check: reason" for results that could not be judged
    message: str = ""
    judged: tuple[RuleOutcome, ...] = ()  # every rule that judged the request
    owner: tuple[str, str] | None = None  # the top owner (kind, name) where known

    @property
    def exceptions(self) -> tuple[str, ...]:
        """The exceptions that kept a broken rule from counting."""
        return tuple(sorted({r.exception_id for r in self.judged if r.exception_id}))

    @property
    def warnings(self) -> tuple[str, ...]:
        if self.outcome != "warned":
            return ()
        return tuple(f"kubeproof (warn): {f.text()}" for f in self.findings)

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(sorted({f.check_id for f in self.findings}))

    def review_answer(self, uid: str) -> dict[str, Any]:
        audit = {"decision": self.outcome, "mode": self.mode}
        if self.findings:
            audit["rules"] = ",".join(self.rules)
        if self.unjudged:
            audit["not-evaluated"] = "; ".join(self.unjudged)[:1000]
        if self.exceptions:
            audit["exceptions"] = ",".join(self.exceptions)
        return answer(uid, self.allowed, message=self.message, warnings=self.warnings, audit=audit)


class Decider:
    """Decisions under one policy. Thread-safe: nothing is shared but read-only data."""

    def __init__(
        self,
        policy: Policy,
        namespace_labels: NamespaceLabels | None = None,
        signatures: SignatureVerifier | None = None,
        exceptions: CurrentExceptions | None = None,
    ) -> None:
        self.policy = policy
        self._namespace_labels = namespace_labels
        self._exceptions = exceptions
        checks: list[Check] = list(policy.checks)
        self.signatures: SignatureVerifier | None = None
        if policy.images.restricts_sources:
            checks.append(image_source_check(policy.images))
        if policy.images.requires_signatures:
            # One verifier (and so one signature cache) for the server's lifetime.
            self.signatures = signatures or SignatureVerifier()
            checks.append(image_signature_check(policy.images, self.signatures))
        self.checks: tuple[Check, ...] = tuple(checks)
        self._coverage = AdmissionCoverage(with_namespace=False)
        self._coverage_with_namespace = AdmissionCoverage(with_namespace=True)

    def decide(self, request: AdmissionRequest) -> Decision:
        policy = self.policy
        if request.operation not in JUDGED_OPERATIONS:
            return Decision(True, "-", "skipped", f"operation {request.operation} is not judged")
        if request.sub_resource not in JUDGED_SUBRESOURCES:
            return Decision(True, "-", "skipped", f"subresource {request.sub_resource} not judged")
        if request.kind not in WORKLOAD_KINDS:
            return self.unjudgeable(f"kind {request.kind} carries no pod spec kubeproof judges")
        exempt = policy.exemptions.reason(request.namespace, request.username)
        if exempt is not None:
            return Decision(True, "-", "exempt", exempt)
        labels = self._labels(request.namespace)
        mode = policy.mode_for(request.namespace, labels)
        if mode == "off":
            return Decision(True, mode, "skipped", f"mode off in namespace {request.namespace}")
        if request.obj is None:
            return self.unjudgeable("request.object is missing")
        obj = _admitted_object(request)
        workload = workload_of(obj)
        if workload is None:
            return self.unjudgeable(f"{request.kind} {request.name or ''} has no pod spec")
        if request.operation == "UPDATE" and _pod_template_unchanged(workload, request):
            # Labels, finalizers, scale: blocking them would strand objects admitted earlier.
            return Decision(True, mode, "allowed", "the pod template did not change")
        owner = declared_top_owner(obj)
        findings, unjudged, judged = self._judge(obj, request.namespace, labels, owner)
        verdict = _verdict(mode, request, findings, unjudged)
        return dataclasses.replace(verdict, judged=judged, owner=owner)

    def _judge(
        self,
        obj: K8sObject,
        namespace: str,
        labels: dict[str, str] | None,
        owner: tuple[str, str] | None,
    ) -> tuple[tuple[Finding, ...], tuple[str, ...], tuple[RuleOutcome, ...]]:
        objects = [obj]
        coverage = self._coverage
        if labels is not None and namespace:
            objects.append(_namespace_object(namespace, labels))
            coverage = self._coverage_with_namespace
        inventory = Inventory(objects, coverage)
        context = Context(
            inventory, pss_level=self.policy.framework_pss_level, cluster_name="admission"
        )
        results = evaluate(inventory, self.checks, context)
        exceptions = self._exceptions() if self._exceptions is not None else ()
        if exceptions:
            # An exception names the workload as a scan sees it: a pod or ReplicaSet folded
            # into its top owner, whose labels a selector is matched against.
            seen_as = inventory
            if owner is not None:
                results = [_as_owned_by(result, owner) for result in results]
                seen_as = Inventory([_owner_object(obj, owner)])
            apply_exceptions(results, exceptions, now=datetime.now(UTC), inventory=seen_as)
        findings: list[Finding] = []
        unjudged: list[str] = []
        for result in results:
            if result.status is Status.FAIL:
                violations = result.extra.get("violations") or [
                    {"message": result.message, "path": result.path}
                ]
                for violation in violations:
                    findings.append(
                        Finding(
                            result.check.id,
                            result.check.title,
                            str(violation["message"]),
                            violation.get("path"),
                            result.check.remediation,
                        )
                    )
            elif result.status is Status.NOT_EVALUATED:
                unjudged.append(f"{result.check.id}: {result.reason or result.message}")
                if self.policy.fail_closed and (result.reason or "").startswith(CHECK_ERROR):
                    # A rule that crashed judged nothing: under failClosed it must not admit.
                    findings.append(_crashed_rule(result))
        return tuple(findings), tuple(unjudged), rule_outcomes(results)

    def image_digest(self, image: str) -> str | None:
        """The digest of an image reference: pinned in it, or what its tag resolved to when
        the signature rule judged it lately. None when neither is known."""
        try:
            reference = parse_registry(image)
        except ImageError:
            return None
        if reference.digest is not None or self.signatures is None:
            return reference.digest
        return self.signatures.resolved_digest(reference)

    def _labels(self, namespace: str) -> dict[str, str] | None:
        if self._namespace_labels is None or not namespace:
            return None
        return self._namespace_labels(namespace)

    def unjudgeable(self, reason: str) -> Decision:
        if self.policy.fail_closed:
            message = f"kubeproof cannot judge this request ({reason}); the policy fails closed"
            return Decision(False, "-", "unjudgeable", reason, message=message)
        return Decision(True, "-", "unjudgeable", reason)


class AdmissionCoverage(Coverage):
    """What one AdmissionReview shows: the admitted object is the only subject, so no
    other workload was missed; every other kind is unread, so a check that consults one
    says not_evaluated. Shared by all requests and never changed after it is built, so
    its answers are memoised: the engine asks twice per check per request."""

    def __init__(self, with_namespace: bool) -> None:
        super().__init__(complete_by_default=False)
        for kind in WORKLOAD_KINDS:
            self.record(kind, "listed")
        if with_namespace:
            self.record("Namespace", "listed")
        self._gaps: dict[tuple[str, ...], str | None] = {}

    def gap(self, kinds: Iterable[str]) -> str | None:
        key = tuple(kinds)
        if key not in self._gaps:
            self._gaps[key] = super().gap(key)
        return self._gaps[key]


def rule_outcomes(results: Iterable[Result]) -> tuple[RuleOutcome, ...]:
    """Each rule's worst outcome over the request's results, in rule order."""
    worst: dict[str, RuleOutcome] = {}
    for result in results:
        outcome = RuleOutcome(result.check.id, result.status.value, _exception_id(result))
        known = worst.get(outcome.check_id)
        if known is None or _rank(outcome) < _rank(known):
            worst[outcome.check_id] = outcome
    return tuple(worst[check_id] for check_id in sorted(worst))


def _rank(outcome: RuleOutcome) -> int:
    return RULE_OUTCOMES.index(outcome.outcome) if outcome.outcome in RULE_OUTCOMES else 0


def _exception_id(result: Result) -> str | None:
    if result.status is not Status.EXCEPTED:
        return None
    exception = result.extra.get("exception")
    return str(exception["id"]) if isinstance(exception, dict) and "id" in exception else None


def _owner_object(obj: K8sObject, owner: tuple[str, str]) -> K8sObject:
    """The top owner as far as the admitted object shows it: its identity, and the labels
    of the object and its pod template (what a selector sees on the owner in a scan)."""
    workload = workload_of(obj)
    labels = {**(workload.pod_labels if workload is not None else {}), **obj.labels}
    metadata = {"name": owner[1], "namespace": obj.namespace, "labels": labels}
    return K8sObject.from_raw({"apiVersion": "", "kind": owner[0], "metadata": metadata})


def _as_owned_by(result: Result, owner: tuple[str, str]) -> Result:
    subject = result.subject
    owned = Subject(subject.api_version, owner[0], subject.namespace, owner[1], subject.container)
    return dataclasses.replace(result, subject=owned)


def _verdict(
    mode: str,
    request: AdmissionRequest,
    findings: tuple[Finding, ...],
    unjudged: tuple[str, ...],
) -> Decision:
    if not findings:
        return Decision(True, mode, "allowed", "no rule broken", unjudged=unjudged)
    rules = sorted({f.check_id for f in findings})
    reason = f"breaks {', '.join(rules)}"
    if mode == "warn":
        return Decision(True, mode, "warned", reason, findings, unjudged)
    if mode == "audit":
        return Decision(True, mode, "audited", reason, findings, unjudged)
    return Decision(
        False, mode, "denied", reason, findings, unjudged, denial_message(request, findings)
    )


def _crashed_rule(result: Result) -> Finding:
    return Finding(
        result.check.id,
        result.check.title,
        f"kubeproof could not judge this rule ({result.reason}); the policy fails closed",
        None,
        "Report the error to the kubeproof maintainers; meanwhile exempt the workload or "
        "set the rule's namespace to warn mode if it must be admitted.",
    )


def denial_message(request: AdmissionRequest, findings: tuple[Finding, ...]) -> str:
    """One readable message: what was refused, each rule broken, where, and the fix."""
    name = request.name or as_dict(as_dict(request.obj).get("metadata")).get("generateName") or ""
    subject = f"{request.kind} {request.namespace}/{name}" if request.namespace else request.kind
    count = len({f.check_id for f in findings})
    lines = [f"kubeproof denied {subject}: {count} rule{'s' if count != 1 else ''} broken"]
    lines.extend(f"- {finding.text()}" for finding in findings)
    return "\n".join(lines)


def _admitted_object(request: AdmissionRequest) -> K8sObject:
    raw = dict(request.obj or {})
    metadata = dict(as_dict(raw.get("metadata")))
    # On CREATE the API server may not have copied the namespace or name into the object yet.
    if request.namespace and not metadata.get("namespace"):
        metadata["namespace"] = request.namespace
    if request.name and not metadata.get("name"):
        metadata["name"] = request.name
    raw["metadata"] = metadata
    # Judge the object as the kind the API server says it is, wherever its pod spec lives.
    raw["kind"] = request.kind
    return K8sObject.from_raw(raw)


def _pod_template_unchanged(workload: Workload, request: AdmissionRequest) -> bool:
    if request.old_obj is None:
        return False
    old = workload_of(K8sObject.from_raw({**request.old_obj, "kind": workload.obj.kind}))
    return (
        old is not None
        and old.pod_spec == workload.pod_spec
        and old.pod_annotations == workload.pod_annotations
    )


def _namespace_object(name: str, labels: dict[str, str]) -> K8sObject:
    return K8sObject.from_raw(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    )


class NamespaceLabelCache:
    """Namespace labels looked up from the API server, kept for `ttl_s` seconds.

    A failed lookup is remembered briefly as unknown (None): a selector then matches
    nothing, so the request falls to name rules or the default mode, never to `off`
    through a label nobody could read.
    """

    def __init__(
        self,
        fetch: Callable[[str], dict[str, str]],
        ttl_s: float = 30.0,
        failure_ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl_s = ttl_s
        self._failure_ttl_s = failure_ttl_s
        self._clock = clock
        self._entries: dict[str, tuple[float, dict[str, str] | None]] = {}
        self._lock = threading.Lock()

    def __call__(self, namespace: str) -> dict[str, str] | None:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(namespace)
        if entry is not None and entry[0] > now:
            return entry[1]
        try:
            labels: dict[str, str] | None = self._fetch(namespace)
            expires = now + self._ttl_s
        except Exception:  # any failure: labels unknown, never a crash of the request
            labels, expires = None, now + self._failure_ttl_s
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[namespace] = (expires, labels)
        return labels
