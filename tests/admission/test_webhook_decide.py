"""Decisions: the one engine on the one object, turned into an answer by the policy."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from admission.reviews import GROUPS, pod_spec, privileged_pod_spec, review, workload
from kubeproof.admission.decide import Decider, NamespaceLabelCache
from kubeproof.admission.policy import Policy, parse_policy
from kubeproof.admission.review import ReviewError, parse_review
from kubeproof.checks.registry import Check


def decide(policy: Policy, body: dict[str, Any], labels: Any = None) -> Any:
    return Decider(policy, labels).decide(parse_review(body))


def answer_of(policy: Policy, body: dict[str, Any]) -> dict[str, Any]:
    request = parse_review(body)
    response: dict[str, Any] = Decider(policy).decide(request).review_answer(request.uid)
    return response["response"]


@pytest.mark.parametrize("kind", sorted(GROUPS))
def test_privileged_template_is_denied_for_every_pod_carrying_kind(
    policy: Policy, kind: str
) -> None:
    obj = workload(kind, "web", privileged_pod_spec())
    response = answer_of(policy, review(obj))
    assert response["allowed"] is False
    status = response["status"]
    assert status["code"] == 403 and status["reason"] == "Forbidden"
    message = status["message"]
    assert f"kubeproof denied {kind} team-a/web" in message
    assert "[pss.privileged]" in message
    assert "securityContext.privileged" in message  # the offending field
    assert "Fix: " in message  # the check's remediation
    assert "pss.privileged" in response["auditAnnotations"]["rules"].split(",")


def test_field_path_is_the_full_path_inside_the_object(policy: Policy) -> None:
    obj = workload("CronJob", "nightly", privileged_pod_spec())
    decision = decide(policy, review(obj))
    paths = {f.path for f in decision.findings}
    assert "spec.jobTemplate.spec.template.spec.containers[0].securityContext.privileged" in paths


@pytest.mark.parametrize("kind", sorted(GROUPS))
def test_compliant_template_is_allowed(policy: Policy, kind: str) -> None:
    response = answer_of(policy, review(workload(kind, "web", pod_spec())))
    assert response["allowed"] is True
    assert "status" not in response and "warnings" not in response


def test_image_from_an_unlisted_registry_is_denied(policy: Policy) -> None:
    spec = pod_spec(image="docker.io/library/nginx:1.27")
    decision = decide(policy, review(workload("Deployment", "web", spec)))
    assert not decision.allowed
    assert decision.rules == ("images.allowed-source",)
    assert "docker.io/library/nginx" in decision.message
    assert "spec.template.spec.containers[0].image" in decision.message


def test_repository_globs_see_docker_hub_names_in_full() -> None:
    policy = parse_policy(
        {
            "apiVersion": "kubeproof.dev/v1alpha1",
            "kind": "AdmissionPolicy",
            "images": {"allowedRepositories": ["docker.io/library/*"]},
        }
    )
    assert decide(policy, review(workload("Pod", "p", pod_spec(image="nginx:1")))).allowed
    bad = decide(policy, review(workload("Pod", "p", pod_spec(image="evil/nginx:1"))))
    assert not bad.allowed
    invalid = decide(policy, review(workload("Pod", "p", pod_spec(image="UPPER CASE"))))
    assert not invalid.allowed and "not a valid reference" in invalid.message


def test_require_digest_reuses_the_catalogue_check() -> None:
    policy = parse_policy(
        {
            "apiVersion": "kubeproof.dev/v1alpha1",
            "kind": "AdmissionPolicy",
            "images": {"requireDigest": True},
        }
    )
    tagged = decide(policy, review(workload("Pod", "p", pod_spec())))
    assert tagged.rules == ("workload.image-digest",)
    pinned_image = "registry.example.com/team/app@sha256:" + "a" * 64
    assert decide(policy, review(workload("Pod", "p", pod_spec(image=pinned_image)))).allowed


def test_warn_mode_allows_with_warnings(policy: Policy) -> None:
    obj = workload("Pod", "p", privileged_pod_spec(), namespace="dev-alice")
    response = answer_of(policy, review(obj))
    assert response["allowed"] is True
    assert any("[pss.privileged]" in w for w in response["warnings"])
    assert response["auditAnnotations"]["decision"] == "warned"


def test_audit_mode_allows_and_records_without_warnings() -> None:
    policy = parse_policy(
        {
            "apiVersion": "kubeproof.dev/v1alpha1",
            "kind": "AdmissionPolicy",
            "enforce": {"frameworks": ["pss-baseline"]},
            "defaultMode": "audit",
        }
    )
    request = parse_review(review(workload("Pod", "p", privileged_pod_spec())))
    decision = Decider(policy).decide(request)
    response = decision.review_answer(request.uid)["response"]
    assert response["allowed"] is True and "warnings" not in response
    assert response["auditAnnotations"] == {
        "decision": "audited",
        "mode": "audit",
        "rules": "pss.privileged",
    }


def test_off_mode_and_exemptions_allow_without_judging() -> None:
    policy = parse_policy(
        {
            "apiVersion": "kubeproof.dev/v1alpha1",
            "kind": "AdmissionPolicy",
            "enforce": {"frameworks": ["pss-restricted"]},
            "namespaces": [{"names": ["legacy"], "mode": "off"}],
            "exemptions": {
                "namespaces": ["infra"],
                "serviceAccounts": ["ci:deployer"],
                "usernames": ["break-glass"],
            },
        }
    )
    spec = privileged_pod_spec()
    assert decide(policy, review(workload("Pod", "p", spec, "legacy"))).outcome == "skipped"
    assert decide(policy, review(workload("Pod", "p", spec, "infra"))).outcome == "exempt"
    as_ci = review(workload("Pod", "p", spec), username="system:serviceaccount:ci:deployer")
    assert decide(policy, as_ci).outcome == "exempt"
    assert decide(policy, review(workload("Pod", "p", spec), username="break-glass")).allowed
    assert not decide(policy, review(workload("Pod", "p", spec), username="alice")).allowed


def test_update_judges_only_a_changed_pod_template(policy: Policy) -> None:
    old = workload("Deployment", "web", privileged_pod_spec())
    relabelled = copy.deepcopy(old)
    relabelled["metadata"]["labels"] = {"team": "a"}
    relabelled["spec"]["replicas"] = 5
    unchanged = decide(policy, review(relabelled, operation="UPDATE", old=old))
    assert unchanged.allowed and unchanged.reason == "the pod template did not change"
    changed = copy.deepcopy(old)
    changed["spec"]["template"]["spec"]["hostNetwork"] = True
    assert not decide(policy, review(changed, operation="UPDATE", old=old)).allowed


def test_ephemeral_containers_subresource_is_judged(policy: Policy) -> None:
    pod = workload("Pod", "p", pod_spec())
    debug = copy.deepcopy(pod)
    debug["spec"]["ephemeralContainers"] = [
        {
            "name": "debug",
            "image": "registry.example.com/debug:1",
            "securityContext": {"privileged": True},
        }
    ]
    body = review(debug, operation="UPDATE", old=pod, sub_resource="ephemeralcontainers")
    decision = decide(policy, body)
    assert not decision.allowed
    assert "spec.ephemeralContainers[0].securityContext.privileged" in decision.message


@pytest.mark.parametrize(
    ("operation", "sub_resource"), [("DELETE", None), ("CONNECT", None), ("UPDATE", "status")]
)
def test_other_operations_and_subresources_are_not_judged(
    policy: Policy, operation: str, sub_resource: str | None
) -> None:
    body = review(
        workload("Pod", "p", privileged_pod_spec()), operation=operation, sub_resource=sub_resource
    )
    assert decide(policy, body).outcome == "skipped"


def test_unknown_kind_fails_closed_or_open_as_the_policy_says(policy: Policy) -> None:
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "a"},
    }
    closed = decide(policy, review(config_map))
    assert not closed.allowed and "fails closed" in closed.message
    open_policy = parse_policy(
        {
            "apiVersion": "kubeproof.dev/v1alpha1",
            "kind": "AdmissionPolicy",
            "enforce": {"frameworks": ["pss-restricted"]},
            "failClosed": False,
        }
    )
    assert decide(open_policy, review(config_map)).allowed


@pytest.mark.parametrize("fail_closed", [True, False])
def test_a_rule_that_crashes_follows_fail_closed(fail_closed: bool) -> None:
    # A fault no real input produces on purpose: a bug in a check.
    policy = parse_policy(
        {
            "apiVersion": "kubeproof.dev/v1alpha1",
            "kind": "AdmissionPolicy",
            "enforce": {"frameworks": ["pss-restricted"]},
            "failClosed": fail_closed,
        }
    )
    decider = Decider(policy)

    def broken(*_: Any) -> None:
        raise ValueError("a bug")

    decider.checks = (*decider.checks, Check(decider.checks[0].spec, broken))
    decision = decider.decide(parse_review(review(workload("Deployment", "web", pod_spec()))))
    assert decision.allowed is not fail_closed
    assert any("check error on this input: ValueError" in u for u in decision.unjudged)
    if fail_closed:
        assert "could not judge this rule" in decision.message
        assert "the policy fails closed" in decision.message


def test_namespace_pod_security_labels_override_the_level_as_in_scan(policy: Policy) -> None:
    # Runs as root (restricted) but is not privileged (baseline): allowed under baseline.
    spec = pod_spec(securityContext={"allowPrivilegeEscalation": False})
    body = review(workload("Pod", "p", spec))
    assert not decide(policy, body).allowed
    baseline = {"pod-security.kubernetes.io/enforce": "baseline"}
    assert decide(policy, body, labels=lambda ns: baseline).allowed
    body_privileged = review(workload("Pod", "p", privileged_pod_spec()))
    assert not decide(policy, body_privileged, labels=lambda ns: baseline).allowed


def test_label_selector_modes_use_looked_up_labels() -> None:
    policy = parse_policy(
        {
            "apiVersion": "kubeproof.dev/v1alpha1",
            "kind": "AdmissionPolicy",
            "enforce": {"checks": ["pss.privileged"]},
            "namespaces": [{"selector": {"matchLabels": {"stage": "dev"}}, "mode": "warn"}],
        }
    )
    body = review(workload("Pod", "p", privileged_pod_spec()))
    assert decide(policy, body, labels=lambda ns: {"stage": "dev"}).outcome == "warned"
    assert decide(policy, body, labels=lambda ns: {"stage": "prod"}).outcome == "denied"
    assert decide(policy, body, labels=lambda ns: None).outcome == "denied"


def test_namespace_label_cache_keeps_answers_and_forgets_failures() -> None:
    now = [0.0]
    calls: list[str] = []

    def fetch(namespace: str) -> dict[str, str]:
        calls.append(namespace)
        if namespace == "broken":
            raise OSError("unreachable")
        return {"name": namespace}

    cache = NamespaceLabelCache(fetch, ttl_s=30, failure_ttl_s=5, clock=lambda: now[0])
    assert cache("a") == {"name": "a"} and cache("a") == {"name": "a"}
    assert cache("broken") is None and cache("broken") is None
    assert calls == ["a", "broken"]
    now[0] = 10.0
    cache("a"), cache("broken")
    assert calls == ["a", "broken", "broken"]
    now[0] = 31.0
    cache("a")
    assert calls[-1] == "a" and len(calls) == 4


def test_hostile_field_types_never_crash_a_decision(policy: Policy) -> None:
    hostile = workload(
        "Pod", "p", {"containers": [{"name": 5, "securityContext": [], "image": {}}]}
    )
    hostile["metadata"]["labels"] = "not a map"
    decision = decide(policy, review(hostile))
    assert decision.outcome in ("denied", "allowed")


@pytest.mark.parametrize(
    ("body", "expected", "uid"),
    [
        ([], "not a JSON object", None),
        ({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}, "expected", None),
        (
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
            "request is missing",
            None,
        ),
        (
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}},
            "request.uid is missing",
            None,
        ),
        (
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {"uid": "u"},
            },
            "request.kind.kind is missing",
            "u",
        ),
        (
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": "u",
                    "kind": {"kind": "Pod"},
                    "operation": "CREATE",
                    "object": 3,
                },
            },
            "request.object is not an object",
            "u",
        ),
    ],
)
def test_malformed_reviews_say_what_is_wrong(body: Any, expected: str, uid: str | None) -> None:
    with pytest.raises(ReviewError) as raised:
        parse_review(body)
    assert expected in str(raised.value)
    assert raised.value.uid == uid
