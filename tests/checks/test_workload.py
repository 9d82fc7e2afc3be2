"""Workload hardening checks: a hardened Deployment passes every check; each case below
changes one thing and expects one verdict."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from checks.helpers import inventory_of, run, statuses
from kubeproof.checks import catalogue, find
from kubeproof.engine import Context, evaluate
from kubeproof.inventory import Coverage, Inventory
from kubeproof.model import Status

DIGEST = "sha256:" + "4f" * 32

HARDENED_CONTAINER: dict[str, Any] = {
    "name": "app",
    "image": f"registry.example.com/shop/app:1.4.2@{DIGEST}",
    "imagePullPolicy": "IfNotPresent",
    "securityContext": {
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    },
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
    "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
}


def deployment(**changes: Any) -> dict[str, Any]:
    """A hardened Deployment; keyword `container`/`pod`/`metadata` dicts are merged in."""
    container = {**copy.deepcopy(HARDENED_CONTAINER), **changes.get("container", {})}
    pod = {
        "serviceAccountName": "shop",
        "automountServiceAccountToken": False,
        "containers": [container],
        **changes.get("pod", {}),
    }
    metadata = {"name": "shop", "namespace": "shop", **changes.get("metadata", {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {k: v for k, v in metadata.items() if v is not None},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "shop"}},
            "template": {"metadata": {"labels": {"app": "shop"}}, "spec": pod},
        },
    }


def with_security(**fields: Any) -> dict[str, Any]:
    return {"securityContext": {**HARDENED_CONTAINER["securityContext"], **fields}}


def without(*fields: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def remove(container: dict[str, Any]) -> dict[str, Any]:
        for field in fields:
            container.pop(field, None)
        return container

    return remove


def container_without(*fields: str, **changes: Any) -> dict[str, Any]:
    container = without(*fields)(copy.deepcopy(HARDENED_CONTAINER))
    container.update(changes)
    return deployment(pod={"containers": [container]})


WORKLOAD_CHECKS = [c.id for c in catalogue() if c.spec.group == "workload"]


@pytest.mark.parametrize("check_id", WORKLOAD_CHECKS)
def test_hardened_deployment_passes(check_id: str) -> None:
    results = run(check_id, deployment())
    assert statuses(results) == ["pass"], [r.message for r in results]


def test_catalogue_has_the_workload_checks() -> None:
    assert len(WORKLOAD_CHECKS) >= 14
    for check_id in WORKLOAD_CHECKS:
        spec = find(check_id).spec  # type: ignore[union-attr]
        assert spec.pss is None, "PSS controls are the pss.* checks"


# (check, manifest, expected status, words the message must contain)
CASES: list[tuple[str, dict[str, Any], str, tuple[str, ...]]] = [
    # read-only root filesystem
    (
        "workload.read-only-root-filesystem",
        deployment(container=with_security(readOnlyRootFilesystem=False)),
        "fail",
        ("container app", "readOnlyRootFilesystem"),
    ),
    (
        "workload.read-only-root-filesystem",
        deployment(container={"securityContext": {"runAsNonRoot": True}}),
        "fail",
        ("writable",),
    ),
    (
        "workload.read-only-root-filesystem",
        deployment(container={"securityContext": {"readOnlyRootFilesystem": "true"}}),
        "fail",
        (),
    ),
    # resources
    ("workload.cpu-request", container_without("resources"), "fail", ("no cpu request",)),
    (
        "workload.cpu-request",
        deployment(container={"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}),
        "pass",
        (),
    ),
    (
        "workload.cpu-request",
        deployment(container={"resources": {"requests": {"cpu": "0", "memory": "1Gi"}}}),
        "fail",
        ("requests.cpu",),
    ),
    (
        "workload.memory-request",
        deployment(container={"resources": {"requests": {"cpu": "1"}}}),
        "fail",
        ("no memory request", "namespace shop"),
    ),
    (
        "workload.memory-limit",
        deployment(container={"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}),
        "fail",
        ("no memory limit",),
    ),
    (
        "workload.memory-limit",
        deployment(container={"resources": {"limits": {"memory": 536870912}}}),
        "pass",
        (),
    ),
    # probes
    ("workload.liveness-probe", container_without("livenessProbe"), "fail", ("no livenessProbe",)),
    (
        "workload.liveness-probe",
        deployment(container={"livenessProbe": {"periodSeconds": 5}}),
        "fail",
        ("without a handler",),
    ),
    (
        "workload.readiness-probe",
        container_without("readinessProbe"),
        "fail",
        ("no readinessProbe",),
    ),
    (
        "workload.readiness-probe",
        deployment(container={"readinessProbe": "yes"}),
        "fail",
        ("without a handler",),
    ),
    # images
    ("workload.image-latest-tag", deployment(container={"image": "nginx"}), "fail", ("no tag",)),
    (
        "workload.image-latest-tag",
        deployment(container={"image": "nginx:latest"}),
        "fail",
        (":latest",),
    ),
    (
        "workload.image-latest-tag",
        deployment(container={"image": "localhost:5000/app"}),
        "fail",
        ("no tag",),
    ),
    (
        "workload.image-latest-tag",
        deployment(container={"image": "localhost:5000/app:2.1"}),
        "pass",
        (),
    ),
    (
        "workload.image-latest-tag",
        deployment(container={"image": f"nginx:latest@{DIGEST}"}),
        "pass",
        (),
    ),
    ("workload.image-latest-tag", deployment(container={"image": ""}), "not_evaluated", ()),
    (
        "workload.image-digest",
        deployment(container={"image": "nginx:1.25.3"}),
        "fail",
        ("not pinned by digest",),
    ),
    ("workload.image-digest", deployment(container={"image": "nginx@sha256:short"}), "fail", ()),
    (
        "workload.image-pull-policy",
        container_without("imagePullPolicy", image="nginx:1.25.3"),
        "fail",
        ("IfNotPresent by default",),
    ),
    (
        "workload.image-pull-policy",
        deployment(container={"image": "nginx:1.25.3", "imagePullPolicy": "Never"}),
        "fail",
        ("Never",),
    ),
    (
        "workload.image-pull-policy",
        deployment(container={"image": "nginx:1.25.3", "imagePullPolicy": "Always"}),
        "pass",
        (),
    ),
    ("workload.image-pull-policy", container_without("imagePullPolicy", image="nginx"), "pass", ()),
    # namespace
    (
        "workload.default-namespace",
        deployment(metadata={"namespace": "default"}),
        "fail",
        ("default namespace",),
    ),
    (
        "workload.default-namespace",
        deployment(metadata={"namespace": None}),
        "fail",
        ("no metadata.namespace",),
    ),
    # service accounts and tokens
    (
        "workload.service-account-token-automount",
        deployment(pod={"automountServiceAccountToken": True}),
        "fail",
        ("the pod sets automountServiceAccountToken true",),
    ),
    (
        "workload.service-account-token-automount",
        deployment(pod={"automountServiceAccountToken": None}),
        "not_evaluated",
        (),
    ),
    (
        "workload.default-service-account",
        deployment(pod={"serviceAccountName": None, "automountServiceAccountToken": True}),
        "fail",
        ("default service account",),
    ),
    (
        "workload.default-service-account",
        deployment(pod={"serviceAccountName": "default", "automountServiceAccountToken": True}),
        "fail",
        ("default service account",),
    ),
    (
        "workload.default-service-account",
        deployment(pod={"serviceAccountName": None, "automountServiceAccountToken": False}),
        "pass",
        (),
    ),
    (
        "workload.default-service-account",
        deployment(
            pod={
                "serviceAccountName": None,
                "serviceAccount": "legacy",
                "automountServiceAccountToken": True,
            }
        ),
        "pass",
        (),
    ),
    (
        "workload.default-service-account",
        deployment(pod={"serviceAccountName": None, "automountServiceAccountToken": None}),
        "not_evaluated",
        (),
    ),
    # capabilities
    (
        "workload.net-raw-capability",
        deployment(container=with_security(capabilities={"drop": ["NET_ADMIN"]})),
        "fail",
        ("does not drop NET_RAW",),
    ),
    (
        "workload.net-raw-capability",
        deployment(container=with_security(capabilities={"drop": ["cap_net_raw"]})),
        "pass",
        (),
    ),
    (
        "workload.net-raw-capability",
        deployment(container=with_security(capabilities={"drop": ["ALL"], "add": ["NET_RAW"]})),
        "fail",
        ("adds NET_RAW",),
    ),
    (
        "workload.added-capabilities",
        deployment(
            container=with_security(
                capabilities={"drop": ["ALL"], "add": ["SYS_TIME", "NET_ADMIN"]}
            )
        ),
        "fail",
        ("NET_ADMIN, SYS_TIME",),
    ),
    # user
    (
        "workload.runs-as-root",
        deployment(container={"securityContext": {"readOnlyRootFilesystem": True}}),
        "fail",
        ("may run as root",),
    ),
    (
        "workload.runs-as-root",
        deployment(container={"securityContext": {"runAsUser": 1000}}),
        "pass",
        (),
    ),
    (
        "workload.runs-as-root",
        deployment(container={"securityContext": {}}, pod={"securityContext": {"runAsUser": 0}}),
        "fail",
        ("runAsUser 0", "pod"),
    ),
    (
        "workload.runs-as-root",
        deployment(
            container={"securityContext": {"runAsUser": 0}},
            pod={"securityContext": {"runAsNonRoot": True}},
        ),
        "fail",
        ("runAsUser 0", "container"),
    ),
    (
        "workload.runs-as-root",
        deployment(
            container={"securityContext": {"runAsUser": 1000}},
            pod={"securityContext": {"runAsUser": 0}},
        ),
        "pass",
        (),
    ),
    (
        "workload.runs-as-root",
        deployment(container={"securityContext": {"runAsUser": True}}),
        "fail",
        ("may run",),
    ),
    (
        "workload.security-context",
        container_without("securityContext"),
        "fail",
        ("no securityContext",),
    ),
    (
        "workload.security-context",
        deployment(container={"securityContext": {}}, pod={"securityContext": {"fsGroup": 2000}}),
        "pass",
        (),
    ),
]


@pytest.mark.parametrize(
    ("check_id", "manifest", "expected", "words"),
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
def test_case(
    check_id: str, manifest: dict[str, Any], expected: str, words: tuple[str, ...]
) -> None:
    results = run(check_id, manifest)
    assert statuses(results) == [expected], [r.message for r in results]
    for word in words:
        assert word in results[0].message


def test_failure_path_is_the_full_field_path() -> None:
    [result] = run("workload.read-only-root-filesystem", container_without("securityContext"))
    assert result.path == "spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem"


# --- which containers and workloads a check judges ----------------------------------------


def pod(spec: dict[str, Any], name: str = "job-pod") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": spec,
    }


def test_probes_not_applicable_to_run_to_completion_workloads() -> None:
    bare = {"name": "task", "image": "busybox:1.36"}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "x"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [bare]}}},
    }
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "c", "namespace": "x"},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [bare]}}}}},
    }
    once = pod({"restartPolicy": "OnFailure", "containers": [bare]})
    for check_id in ("workload.liveness-probe", "workload.readiness-probe"):
        assert run(check_id, job, cron, once) == []
    # A long-running bare pod is judged.
    assert statuses(run("workload.liveness-probe", pod({"containers": [bare]}))) == ["fail"]


def test_probes_not_required_of_init_containers() -> None:
    manifest = deployment(pod={"initContainers": [{"name": "migrate", "image": "m:1"}]})
    results = run("workload.liveness-probe", manifest)
    assert [r.subject.container for r in results] == ["app"]


def test_init_containers_judged_and_named_ephemeral_skipped() -> None:
    debug = {"name": "debug", "image": "busybox"}
    init = {"name": "migrate", "image": "m:1"}
    results = run(
        "workload.read-only-root-filesystem",
        deployment(pod={"initContainers": [init], "ephemeralContainers": [debug]}),
    )
    by_container = {r.subject.container: r for r in results}
    assert set(by_container) == {"migrate", "app"}
    assert by_container["migrate"].status is Status.FAIL
    assert "init container migrate" in by_container["migrate"].message


def test_linux_only_checks_skip_windows_pods() -> None:
    bare = {"name": "win", "image": "mcr.microsoft.com/windows/servercore:ltsc2022"}
    windows = pod({"os": {"name": "windows"}, "containers": [bare]})
    by_selector = pod({"nodeSelector": {"kubernetes.io/os": "windows"}, "containers": [bare]})
    for check_id in (
        "workload.read-only-root-filesystem",
        "workload.runs-as-root",
        "workload.net-raw-capability",
        "workload.added-capabilities",
    ):
        assert run(check_id, windows, by_selector) == []
    assert statuses(run("workload.memory-limit", windows)) == ["fail"]


# --- LimitRange defaults ------------------------------------------------------------------


def limit_range(namespace: str, **item: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "defaults", "namespace": namespace},
        "spec": {"limits": [{"type": "Container", **item}]},
    }


NO_RESOURCES = container_without("resources")


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (
            {"defaultRequest": {"cpu": "100m", "memory": "64Mi"}},
            {
                "workload.cpu-request": "pass",
                "workload.memory-request": "pass",
                "workload.memory-limit": "fail",
            },
        ),
        (
            {"default": {"memory": "512Mi"}},
            {
                "workload.cpu-request": "fail",
                "workload.memory-request": "pass",
                "workload.memory-limit": "pass",
            },
        ),
        (
            {"max": {"cpu": "2"}, "min": {"memory": "32Mi"}},
            {
                "workload.cpu-request": "pass",
                "workload.memory-request": "pass",
                "workload.memory-limit": "fail",
            },
        ),
    ],
)
def test_limit_range_defaults_count(item: dict[str, Any], expected: dict[str, str]) -> None:
    for check_id, status in expected.items():
        assert statuses(run(check_id, NO_RESOURCES, limit_range("shop", **item))) == [status]


def test_limit_range_elsewhere_or_for_pods_does_not_count() -> None:
    other_namespace = limit_range("other", defaultRequest={"cpu": "1"})
    pod_type = limit_range("shop", defaultRequest={"cpu": "1"})
    pod_type["spec"]["limits"][0]["type"] = "Pod"
    assert statuses(run("workload.cpu-request", NO_RESOURCES, other_namespace)) == ["fail"]
    assert statuses(run("workload.cpu-request", NO_RESOURCES, pod_type)) == ["fail"]


def run_with_coverage(check_id: str, coverage: Coverage, *manifests: Any) -> list[str]:
    inventory = Inventory(list(inventory_of(*manifests)), coverage)
    check = find(check_id)
    assert check is not None
    return statuses(evaluate(inventory, [check], Context(inventory)))


def test_unread_limit_ranges_mean_not_evaluated_not_fail() -> None:
    coverage = Coverage()
    coverage.record("LimitRange", "forbidden", "403")
    assert run_with_coverage("workload.memory-limit", coverage, NO_RESOURCES) == ["not_evaluated"]
    # A container that sets the limit itself needs no LimitRange to pass.
    assert run_with_coverage("workload.memory-limit", coverage, deployment()) == ["pass"]


# --- service accounts ---------------------------------------------------------------------


def service_account(name: str, automount: bool | None) -> dict[str, Any]:
    account: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": "shop"},
    }
    if automount is not None:
        account["automountServiceAccountToken"] = automount
    return account


UNSET = deployment(pod={"automountServiceAccountToken": None})


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        (service_account("shop", False), "pass"),
        (service_account("shop", True), "fail"),
        (service_account("shop", None), "fail"),
        (service_account("other", False), "not_evaluated"),
    ],
)
def test_token_automount_follows_the_service_account(
    account: dict[str, Any], expected: str
) -> None:
    results = run("workload.service-account-token-automount", UNSET, account)
    assert statuses(results) == [expected]


def test_pod_setting_overrides_service_account() -> None:
    mounted = deployment(pod={"automountServiceAccountToken": True})
    results = run(
        "workload.service-account-token-automount", mounted, service_account("shop", False)
    )
    assert statuses(results) == ["fail"]


def test_default_account_without_token_passes() -> None:
    on_default = deployment(pod={"serviceAccountName": None, "automountServiceAccountToken": None})
    assert statuses(
        run("workload.default-service-account", on_default, service_account("default", False))
    ) == ["pass"]
    assert statuses(
        run("workload.default-service-account", on_default, service_account("default", None))
    ) == ["fail"]


def test_unread_service_accounts_are_named_in_the_reason() -> None:
    coverage = Coverage()
    coverage.record("ServiceAccount", "forbidden", "403")
    inventory = Inventory(list(inventory_of(UNSET)), coverage)
    check = find("workload.service-account-token-automount")
    assert check is not None
    [result] = evaluate(inventory, [check], Context(inventory))
    assert result.status is Status.NOT_EVALUATED
    assert "ServiceAccount forbidden" in (result.reason or "")


# --- host paths ---------------------------------------------------------------------------


def with_host_path(read_only: bool | None) -> dict[str, Any]:
    mount: dict[str, Any] = {"name": "logs", "mountPath": "/var/log/host"}
    if read_only is not None:
        mount["readOnly"] = read_only
    container = {
        **copy.deepcopy(HARDENED_CONTAINER),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, mount],
    }
    return deployment(
        pod={
            "containers": [container],
            "volumes": [
                {"name": "tmp", "emptyDir": {}},
                {"name": "logs", "hostPath": {"path": "/var/log"}},
            ],
        }
    )


@pytest.mark.parametrize(
    ("read_only", "expected"), [(None, "fail"), (False, "fail"), (True, "pass")]
)
def test_writable_host_path(read_only: bool | None, expected: str) -> None:
    results = run("workload.writable-host-path", with_host_path(read_only))
    assert statuses(results) == [expected]
    if expected == "fail":
        assert "hostPath volume logs (/var/log)" in results[0].message
        assert results[0].path == "spec.template.spec.containers[0].volumeMounts[1].readOnly"


def test_unmounted_host_path_volume_passes() -> None:
    manifest = deployment(pod={"volumes": [{"name": "h", "hostPath": {"path": "/etc"}}]})
    assert statuses(run("workload.writable-host-path", manifest)) == ["pass"]


# --- hostile input ------------------------------------------------------------------------

HOSTILE: list[dict[str, Any]] = [
    deployment(
        container={
            "securityContext": ["not", "a", "dict"],
            "resources": "lots",
            "image": 42,
            "livenessProbe": [],
            "imagePullPolicy": 7,
        }
    ),
    deployment(
        container={
            "securityContext": {"capabilities": {"add": "NET_RAW", "drop": [None, 3]}},
            "resources": {"requests": ["cpu"], "limits": {"memory": None}},
        }
    ),
    deployment(
        pod={
            "securityContext": "root",
            "serviceAccountName": 5,
            "automountServiceAccountToken": "no",
            "volumes": {"a": 1},
            "nodeSelector": ["x"],
            "os": "linux",
        }
    ),
    deployment(
        pod={
            "volumes": [None, {"name": "h", "hostPath": "x"}],
            "containers": [
                {
                    "name": "a",
                    "image": "a:1",
                    "volumeMounts": ["h", {"name": "h", "readOnly": "yes"}],
                }
            ],
        }
    ),
    limit_range("shop", default="big"),
    {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "x", "namespace": "shop"},
        "spec": {"limits": "none"},
    },
    {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "shop", "namespace": "shop"},
        "automountServiceAccountToken": "false",
    },
]


@pytest.mark.parametrize("check_id", WORKLOAD_CHECKS)
def test_hostile_input_never_crashes_a_check(check_id: str) -> None:
    for result in run(check_id, *HOSTILE):
        assert "check error" not in (result.reason or ""), result.reason
