"""Each detector fires on what it describes and stays quiet on its look-alikes; baseline
detectors learn first; what cannot be judged is not_evaluated, never clean."""

from __future__ import annotations

from typing import Any

import pytest

from audit.auditlog import binding, event, line, pod
from kubeproof.audit.baseline import Baseline
from kubeproof.audit.detectors import detectors, find_detector
from kubeproof.audit.events import ParseStats, events_from_lines
from kubeproof.audit.pipeline import Pipeline
from kubeproof.checks.registry import CRITERIA
from kubeproof.model import Status

HOUR = 3600.0
RBAC = "rbac.authorization.k8s.io"


def run(*events: dict[str, Any], baseline: Baseline | None = None, **options: Any) -> Pipeline:
    pipeline = Pipeline(baseline if baseline is not None else frozen_baseline(), **options)
    stats = ParseStats()
    for parsed in events_from_lines(enumerate((line(e) for e in events), 1), "log", stats):
        pipeline.feed(parsed)
    assert stats.malformed == 0
    return pipeline


def frozen_baseline(*learned: dict[str, Any]) -> Baseline:
    """A baseline that learned `learned` and has finished learning."""
    baseline = Baseline(learning_period_s=0.0)
    stats = ParseStats()
    for parsed in events_from_lines(enumerate((line(e) for e in learned), 1), "log", stats):
        baseline.learn(parsed)
    baseline.learned_until(-1e12 if not learned else baseline.learning_started or 0.0)
    baseline.learning_ends = 1772445600.0 - 1  # before every test event
    return baseline


def fired(pipeline: Pipeline, detector_id: str) -> list[list[str]]:
    return [d.audit_ids for d in pipeline.detections() if d.detector.id == detector_id]


def not_evaluated(pipeline: Pipeline) -> dict[str, str]:
    return {r.check.id: r.reason or "" for r in pipeline.not_evaluated()}


def test_every_detector_has_a_valid_catalogue_entry() -> None:
    found = detectors()
    assert len(found) == 14
    for entry in found:
        assert entry.id.startswith("audit.")
        assert "CC7.2" in entry.spec.check.criteria
        assert set(entry.spec.check.criteria) <= CRITERIA
        assert all(r.endswith(".") for r in entry.spec.check.criteria.values())
    assert find_detector("audit.pod-exec") is not None


@pytest.mark.parametrize(
    ("subresource", "detector_id"),
    [
        ("exec", "audit.pod-exec"),
        ("attach", "audit.pod-attach"),
        ("portforward", "audit.pod-port-forward"),
    ],
)
def test_sessions_into_pods_fire_when_allowed(subresource: str, detector_id: str) -> None:
    allowed = event(verb="create", subresource=subresource, code=400, audit_id="allowed")
    refused = event(verb="create", subresource=subresource, code=403, decision="forbid")
    log_read = event(verb="get", subresource="log")
    pipeline = run(allowed, refused, log_read)
    assert fired(pipeline, detector_id) == [["allowed"]]
    assert len(pipeline.detections()) == 1


def test_exec_evidence_names_the_program_and_never_its_arguments() -> None:
    uri = "/api/v1/namespaces/shop/pods/web-1/exec?command=%2Fusr%2Fbin%2Fmysql&command=-pHunter2x"
    pipeline = run(event(verb="create", subresource="exec", uri=uri))
    [detection] = pipeline.detections()
    evidence = detection.result().extra["evidence"]
    assert evidence["command"] == "mysql"
    assert "Hunter2x" not in repr(detection.result())


def test_secret_reads_fire_for_subjects_that_never_read_secrets() -> None:
    baseline = frozen_baseline(
        event(user="system:serviceaccount:infra:vault", verb="list", resource="secrets", name=None),
        event(user="alice", verb="get", resource="pods"),
    )
    pipeline = run(
        event(user="system:serviceaccount:infra:vault", verb="get", resource="secrets", name="db"),
        event(user="alice", verb="get", resource="secrets", name="db", audit_id="alice-1"),
        event(user="alice", verb="list", resource="secrets", name=None, audit_id="alice-2"),
        event(user="bob", verb="watch", resource="secrets", name=None, audit_id="bob-1"),
        event(user="carol", verb="get", resource="secrets", code=403, decision="forbid"),
        event(user="dave", verb="delete", resource="secrets", name="db"),
        baseline=baseline,
    )
    assert fired(pipeline, "audit.secret-read-unusual") == [["alice-1", "alice-2"], ["bob-1"]]
    [alice, _] = [d.result() for d in pipeline.detections()]
    assert alice.subject.kind == "User" and alice.subject.name == "alice"
    assert "never read Secrets" in alice.message


def test_allowed_anonymous_requests_fire_and_refused_ones_do_not() -> None:
    anonymous = {"user": "system:anonymous", "groups": ("system:unauthenticated",)}
    pipeline = run(
        event(**anonymous, resource=None, uri="/version", audit_id="version"),
        event(
            **anonymous,
            verb="list",
            resource="namespaces",
            namespace=None,
            name=None,
            code=403,
            decision="forbid",
        ),
        event(
            user="someone",
            groups=("system:unauthenticated",),
            verb="list",
            resource="configmaps",
            audit_id="group",
        ),
    )
    assert fired(pipeline, "audit.anonymous-allowed") == [["version"], ["group"]]


def test_privileged_and_host_pods_fire_from_the_request_body() -> None:
    privileged = pod(containers=[{"name": "app", "securityContext": {"privileged": True}}])
    host_pid = pod(hostPID=True)
    host_path = pod(volumes=[{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}])
    plain = pod()
    create = {"verb": "create", "name": None, "code": 201, "level": "Request"}
    pipeline = run(
        event(**create, request_object=privileged, audit_id="privileged"),
        event(**create, request_object=host_pid, audit_id="hostpid"),
        event(**create, request_object=host_path, audit_id="hostpath"),
        event(**create, request_object=plain),
        event(**{**create, "code": 403}, request_object=privileged),  # refused: not created
        event(**create, request_object=privileged, uri="/api/v1/namespaces/shop/pods?dryRun=All"),
    )
    assert fired(pipeline, "audit.privileged-pod-created") == [
        ["privileged"],
        ["hostpid"],
        ["hostpath"],
    ]
    assert "audit.privileged-pod-created" not in not_evaluated(pipeline)


def test_pod_creations_without_a_body_are_not_evaluated() -> None:
    pipeline = run(event(verb="create", code=201, level="Metadata"))
    assert not pipeline.detections()
    reason = not_evaluated(pipeline)["audit.privileged-pod-created"]
    assert "1 x pod creation logged without its body (audit level Metadata)" in reason


def test_bindings_to_cluster_admin_fire_from_either_body() -> None:
    write = {"api_group": RBAC, "code": 201, "level": "Request", "name": None}
    pipeline = run(
        event(
            **write,
            verb="create",
            resource="clusterrolebindings",
            namespace=None,
            request_object=binding(),
            audit_id="crb",
        ),
        event(
            **write,
            verb="update",
            resource="rolebindings",
            response_object=binding(kind="RoleBinding"),
            audit_id="rb",
        ),
        event(
            **write,
            verb="create",
            resource="clusterrolebindings",
            namespace=None,
            request_object=binding(role="view"),
        ),
        event(
            **write,
            verb="create",
            resource="clusterrolebindings",
            namespace=None,
            user="system:apiserver",
            request_object=binding(),
        ),  # bootstrap policy
    )
    assert fired(pipeline, "audit.cluster-admin-binding") == [["crb"], ["rb"]]


def test_binding_changes_without_a_body_are_not_evaluated() -> None:
    pipeline = run(
        event(
            verb="create",
            resource="clusterrolebindings",
            api_group=RBAC,
            namespace=None,
            code=201,
            level="Metadata",
        )
    )
    assert "audit.cluster-admin-binding" in not_evaluated(pipeline)


def test_webhook_configuration_changes_fire() -> None:
    webhook = {"api_group": "admissionregistration.k8s.io", "namespace": None, "name": "policy"}
    pipeline = run(
        event(**webhook, verb="delete", resource="validatingwebhookconfigurations", audit_id="d"),
        event(**webhook, verb="patch", resource="mutatingwebhookconfigurations", audit_id="p"),
        event(**webhook, verb="get", resource="mutatingwebhookconfigurations"),
        event(
            **webhook,
            verb="delete",
            resource="validatingwebhookconfigurations",
            code=403,
            decision="forbid",
        ),
    )
    assert fired(pipeline, "audit.webhook-config-changed") == [["d"], ["p"]]


def test_rbac_changes_in_kube_system_fire() -> None:
    pipeline = run(
        event(
            verb="create",
            resource="roles",
            api_group=RBAC,
            namespace="kube-system",
            code=201,
            audit_id="ks",
        ),
        event(verb="create", resource="roles", api_group=RBAC, namespace="shop", code=201),
        event(
            verb="update",
            resource="rolebindings",
            api_group=RBAC,
            namespace="kube-system",
            user="system:apiserver",
        ),
    )
    assert fired(pipeline, "audit.kube-system-rbac-changed") == [["ks"]]


def test_token_requests_fire_for_subjects_that_never_requested_tokens() -> None:
    token = {
        "verb": "create",
        "resource": "serviceaccounts",
        "subresource": "token",
        "namespace": "kube-system",
        "name": "default",
        "code": 201,
    }
    baseline = frozen_baseline(event(**token, user="system:kube-controller-manager"))
    pipeline = run(
        event(**token, user="system:kube-controller-manager"),
        event(**token, user="mallory", audit_id="mallory"),
        baseline=baseline,
    )
    assert fired(pipeline, "audit.token-request-unusual") == [["mallory"]]


def test_a_burst_of_forbidden_requests_fires_once_per_burst() -> None:
    refused = {"code": 403, "decision": "forbid"}
    burst = [event(**refused, user="prober", at=i, audit_id=f"b{i}") for i in range(10)]
    slow = [event(**refused, user="slow", at=i * 30) for i in range(10)]  # 10 in 270 s
    few = [event(**refused, user="few", at=i) for i in range(9)]
    pipeline = run(*burst, *slow, *few)
    assert fired(pipeline, "audit.forbidden-burst") == [[f"b{i}" for i in range(10)]]


def test_the_burst_threshold_and_window_are_configurable() -> None:
    refused = [event(user="slow", code=403, decision="forbid", at=i * 30) for i in range(3)]
    assert fired(run(*refused, burst_threshold=3, burst_window_s=120), "audit.forbidden-burst")
    assert not fired(run(*refused, burst_threshold=3, burst_window_s=30), "audit.forbidden-burst")


def test_new_source_addresses_and_clients_fire_for_known_subjects_only() -> None:
    baseline = frozen_baseline(event(user="ci", source_ip="10.0.0.5", user_agent="argocd/2.9"))
    pipeline = run(
        event(user="ci", source_ip="10.0.0.5", user_agent="argocd/2.10 (linux)"),
        event(user="ci", source_ip="203.0.113.9", user_agent="kubectl/v1.31.0", audit_id="new"),
        event(user="stranger", source_ip="198.51.100.1"),
        baseline=baseline,
    )
    assert fired(pipeline, "audit.new-source-ip") == [["new"]]
    assert fired(pipeline, "audit.new-user-agent") == [["new"]]
    assert pipeline.coverage()["notJudged"]["audit.new-source-ip"] == {"subject has no baseline": 1}


def test_activity_outside_usual_hours_fires_with_a_margin_of_one_hour() -> None:
    # Learned: 20 events between 10:00 and 10:59 UTC.
    baseline = frozen_baseline(*(event(user="alice", at=i * 60) for i in range(20)))
    pipeline = run(
        event(user="alice", at=1 * HOUR),  # 11:00, next to a usual hour
        event(user="alice", at=15 * HOUR, audit_id="night"),  # 01:00 next day
        baseline=baseline,
    )
    assert fired(pipeline, "audit.off-hours-activity") == [["night"]]


def test_hours_are_not_judged_on_a_thin_baseline() -> None:
    baseline = frozen_baseline(*(event(user="alice", at=i) for i in range(5)))
    pipeline = run(event(user="alice", at=15 * HOUR), baseline=baseline)
    assert not fired(pipeline, "audit.off-hours-activity")


def test_baseline_detectors_learn_first_and_then_judge() -> None:
    baseline = Baseline(learning_period_s=HOUR)
    learning = [event(user="alice", at=i * 60, verb="list", resource="secrets") for i in range(3)]
    later = [
        event(user="alice", at=2 * HOUR, verb="get", resource="secrets"),  # learned: quiet
        event(user="bob", at=2 * HOUR, verb="get", resource="secrets", audit_id="bob"),
        event(user="bob", at=10, verb="get", resource="secrets"),  # in the period: learned
    ]
    pipeline = run(*learning, *later, baseline=baseline)
    assert fired(pipeline, "audit.secret-read-unusual") == [["bob"]]
    assert pipeline.learned_events == 4 and pipeline.compared_events == 2


def test_baseline_detectors_are_not_evaluated_while_learning() -> None:
    pipeline = run(event(user="alice"), baseline=Baseline(learning_period_s=HOUR))
    reasons = not_evaluated(pipeline)
    assert {i for i, d in ((d.id, d) for d in detectors()) if d.spec.baseline} <= set(reasons)
    assert "learning period until 2026-03-02T11:00:00" in reasons["audit.new-source-ip"]
    assert "audit.pod-exec" not in reasons


def test_an_empty_input_evaluates_nothing() -> None:
    pipeline = run()
    assert len(pipeline.not_evaluated()) == len(detectors())
    assert all(r.status is Status.NOT_EVALUATED for r in pipeline.not_evaluated())


def test_service_account_subjects_are_named_as_service_accounts() -> None:
    pipeline = run(
        event(user="system:serviceaccount:shop:deployer", verb="create", subresource="exec")
    )
    subject = pipeline.detections()[0].result().subject
    assert (subject.kind, subject.namespace, subject.name) == ("ServiceAccount", "shop", "deployer")
