"""controlplane.*: kube-apiserver flags read from its static pod."""

from __future__ import annotations

from typing import Any

import pytest

from checks.helpers import inventory_of, run, statuses
from kubeproof.checks import catalogue, find
from kubeproof.checks.controlplane import NOT_VISIBLE, parse_flags
from kubeproof.engine import Context, evaluate
from kubeproof.inventory import Coverage
from kubeproof.model import Result

CHECKS = sorted(c.id for c in catalogue() if c.spec.group == "controlplane")

GOOD_FLAGS = [
    "--anonymous-auth=false",
    "--authorization-mode=Node,RBAC",
    "--audit-policy-file=/etc/kubernetes/audit/policy.yaml",
    "--audit-log-path=/var/log/kubernetes/audit/audit.log",
    "--audit-log-maxage=30",
    "--audit-log-maxbackup=10",
    "--audit-log-maxsize=100",
    "--enable-admission-plugins=NodeRestriction",
    "--profiling=false",
    "--kubelet-certificate-authority=/etc/kubernetes/pki/ca.crt",
]


def apiserver_pod(
    command: Any = None,
    args: Any = None,
    *,
    name: str = "kube-apiserver-node1",
    namespace: str | None = "kube-system",
    labels: dict[str, str] | None = None,
    container_name: str = "kube-apiserver",
    image: str = "registry.k8s.io/kube-apiserver:v1.34.0",
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": container_name, "image": image}
    if command is not None:
        container["command"] = command
    if args is not None:
        container["args"] = args
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {"component": "kube-apiserver", "tier": "control-plane"}
        if labels is None
        else labels,
    }
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": {"containers": [container]}}  # fmt: skip


def kubeadm(*flags: str) -> dict[str, Any]:
    return apiserver_pod(["kube-apiserver", *flags])


def with_flags(replacements: dict[str, str | None]) -> list[str]:
    """GOOD_FLAGS with some flags replaced (None: removed)."""
    flags = [f for f in GOOD_FLAGS if f.split("=")[0].lstrip("-") not in replacements]
    return flags + [f"--{k}={v}" for k, v in replacements.items() if v is not None]


def one(check_id: str, *objects: dict[str, Any] | str) -> Result:
    (result,) = run(check_id, *objects)
    return result


def on_cluster(check_id: str, *objects: dict[str, Any], pods: str = "listed") -> list[Result]:
    """Results as a cluster source would give them: coverage is not complete by default."""
    check = find(check_id)
    assert check is not None
    inventory = inventory_of(*objects)
    inventory.coverage = Coverage(complete_by_default=False)
    inventory.coverage.record("Pod", pods, "" if pods == "listed" else "403 Forbidden")
    return evaluate(inventory, [check], Context(inventory))


@pytest.mark.parametrize("check_id", CHECKS)
def test_a_hardened_apiserver_passes_every_check(check_id: str) -> None:
    assert statuses(run(check_id, kubeadm(*GOOD_FLAGS))) == ["pass"]


@pytest.mark.parametrize("check_id", CHECKS)
def test_a_bare_apiserver_fails_every_check(check_id: str) -> None:
    # An audit log file, so that its retention is judged too.
    pod = kubeadm("--etcd-servers=https://127.0.0.1:2379", "--audit-log-path=/var/log/audit.log")
    (result,) = run(check_id, pod)
    assert result.status.value == "fail"
    assert "Pod kube-system/kube-apiserver-node1 container kube-apiserver" in result.message
    assert result.subject.kind == "Cluster"


@pytest.mark.parametrize("check_id", CHECKS)
def test_no_apiserver_in_manifests_is_not_applicable(check_id: str) -> None:
    other = apiserver_pod(["etcd"], labels={"component": "etcd", "tier": "control-plane"})
    assert run(check_id, other) == []


@pytest.mark.parametrize("check_id", CHECKS)
def test_no_apiserver_on_a_cluster_is_not_evaluated_never_pass(check_id: str) -> None:
    (result,) = on_cluster(check_id)
    assert result.status.value == "not_evaluated"
    assert result.reason == NOT_VISIBLE


@pytest.mark.parametrize("check_id", CHECKS)
def test_pods_not_readable_is_not_evaluated(check_id: str) -> None:
    results = on_cluster(check_id, pods="forbidden")
    assert {r.status.value for r in results} == {"not_evaluated"}
    assert all("Pod forbidden" in (r.reason or "") for r in results)


@pytest.mark.parametrize("check_id", CHECKS)
def test_apiserver_on_a_cluster_is_judged(check_id: str) -> None:
    assert statuses(on_cluster(check_id, kubeadm(*GOOD_FLAGS))) == ["pass"]


# --- each concern ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected", "words"),
    [
        ("false", "pass", ()),
        ("False", "pass", ()),
        ("0", "pass", ()),
        ("true", "fail", ("is true",)),
        ("yes", "fail", ("not a boolean",)),
        (None, "fail", ("not set", "defaults to true")),
    ],
)
def test_anonymous_auth(value: str | None, expected: str, words: tuple[str, ...]) -> None:
    result = one(
        "controlplane.apiserver-anonymous-auth-disabled",
        kubeadm(*with_flags({"anonymous-auth": value})),
    )
    assert result.status.value == expected
    assert all(w in result.message for w in words)


def test_bare_boolean_flag_is_true_and_ignores_the_next_word() -> None:
    # pflag reads `--anonymous-auth false` as true plus a stray word.
    flags = [*with_flags({"anonymous-auth": None}), "--anonymous-auth", "false"]
    result = one("controlplane.apiserver-anonymous-auth-disabled", kubeadm(*flags))
    assert result.status.value == "fail"
    assert "without '='" in result.message
    assert result.path == "spec.containers[0].command[10]"  # the bare flag, not "false"


def test_anonymous_auth_in_an_authentication_config_is_not_evaluated() -> None:
    flags = with_flags({"anonymous-auth": None, "authentication-config": "/etc/authn.yaml"})
    result = one("controlplane.apiserver-anonymous-auth-disabled", kubeadm(*flags))
    assert result.status.value == "not_evaluated"
    assert "--authentication-config" in (result.reason or "")


@pytest.mark.parametrize(
    ("modes", "expected", "words"),
    [
        (["--authorization-mode=Node,RBAC"], "pass", ()),
        (["--authorization-mode", "RBAC,Node"], "pass", ()),
        (["--authorization-mode=Node", "--authorization-mode=RBAC"], "pass", ()),
        (["--authorization-mode=RBAC"], "fail", ("does not include Node",)),
        (["--authorization-mode=Node,RBAC,AlwaysAllow"], "fail", ("includes AlwaysAllow",)),
        (["--authorization-mode=AlwaysAllow"], "fail", ("AlwaysAllow", "include Node", "RBAC")),
        ([], "fail", ("defaults to AlwaysAllow",)),
    ],
)
def test_authorization_mode(modes: list[str], expected: str, words: tuple[str, ...]) -> None:
    result = one(
        "controlplane.apiserver-authorization-mode",
        kubeadm(*with_flags({"authorization-mode": None}), *modes),
    )
    assert result.status.value == expected
    assert all(w in result.message for w in words)


def test_authorization_config_file_is_not_evaluated() -> None:
    flags = with_flags({"authorization-mode": None, "authorization-config": "/etc/authz.yaml"})
    result = one("controlplane.apiserver-authorization-mode", kubeadm(*flags))
    assert result.status.value == "not_evaluated"


@pytest.mark.parametrize(
    ("replacements", "expected", "words"),
    [
        ({}, "pass", ()),
        ({"audit-log-path": None, "audit-webhook-config-file": "/etc/hook.yaml"}, "pass", ()),
        ({"audit-log-path": "-"}, "pass", ()),
        ({"audit-policy-file": None}, "fail", ("--audit-policy-file is not set",)),
        ({"audit-policy-file": ""}, "fail", ("--audit-policy-file is not set",)),
        ({"audit-log-path": None}, "fail", ("no audit backend",)),
    ],
)
def test_audit_logging(
    replacements: dict[str, str | None], expected: str, words: tuple[str, ...]
) -> None:
    result = one("controlplane.apiserver-audit-logging", kubeadm(*with_flags(replacements)))
    assert result.status.value == expected
    assert all(w in result.message for w in words)


@pytest.mark.parametrize(
    ("replacements", "expected", "words"),
    [
        ({"audit-log-maxage": "90"}, "pass", ()),
        ({"audit-log-maxage": "7"}, "fail", ("--audit-log-maxage is 7, below 30",)),
        ({"audit-log-maxbackup": None}, "fail", ("--audit-log-maxbackup is not set",)),
        ({"audit-log-maxsize": "big"}, "fail", ("not a whole number",)),
    ],
)
def test_audit_log_retention(
    replacements: dict[str, str | None], expected: str, words: tuple[str, ...]
) -> None:
    result = one("controlplane.apiserver-audit-log-retention", kubeadm(*with_flags(replacements)))
    assert result.status.value == expected
    assert all(w in result.message for w in words)


@pytest.mark.parametrize("path", [None, "-"])
def test_retention_without_a_log_file_is_not_judged(path: str | None) -> None:
    pod = kubeadm(*with_flags({"audit-log-path": path, "audit-log-maxage": None}))
    assert run("controlplane.apiserver-audit-log-retention", pod) == []


@pytest.mark.parametrize(
    ("extra", "expected", "words"),
    [
        (["--enable-admission-plugins=NodeRestriction,EventRateLimit"], "pass", ()),
        (["--enable-admission-plugins", "NodeRestriction,AlwaysAdmit"], "fail", ("AlwaysAdmit",)),
        (["--admission-control=AlwaysAdmit", "--enable-admission-plugins=NodeRestriction"],
         "fail", ("AlwaysAdmit",)),
        (["--enable-admission-plugins=PodSecurity"], "fail", ("NodeRestriction is not",)),
        (["--enable-admission-plugins=NodeRestriction",
          "--disable-admission-plugins=ServiceAccount,NamespaceLifecycle"],
         "fail", ("turns off ServiceAccount", "turns off NamespaceLifecycle")),
        (["--enable-admission-plugins=NodeRestriction", "--disable-admission-plugins=LimitRanger"],
         "pass", ()),
    ],
)  # fmt: skip
def test_admission_plugins(extra: list[str], expected: str, words: tuple[str, ...]) -> None:
    flags = with_flags({"enable-admission-plugins": None}) + extra
    result = one("controlplane.apiserver-admission-plugins", kubeadm(*flags))
    assert result.status.value == expected
    assert all(w in result.message for w in words)


@pytest.mark.parametrize(
    ("value", "expected"), [("false", "pass"), ("true", "fail"), (None, "fail")]
)
def test_profiling(value: str | None, expected: str) -> None:
    pod = kubeadm(*with_flags({"profiling": value}))
    assert statuses(run("controlplane.apiserver-profiling-disabled", pod)) == [expected]


@pytest.mark.parametrize(("value", "expected"), [("/ca.crt", "pass"), ("", "fail"), (None, "fail")])
def test_kubelet_certificate_authority(value: str | None, expected: str) -> None:
    pod = kubeadm(*with_flags({"kubelet-certificate-authority": value}))
    assert statuses(run("controlplane.apiserver-kubelet-certificate-authority", pod)) == [expected]


# --- finding the API server and its flags ---------------------------------------------------


def test_flags_in_args_after_the_command() -> None:
    pod = apiserver_pod(["kube-apiserver"], args=GOOD_FLAGS)
    assert statuses(run("controlplane.apiserver-profiling-disabled", pod)) == ["pass"]


def test_flags_in_args_only_when_the_image_runs_kube_apiserver() -> None:
    pod = apiserver_pod(args=with_flags({"profiling": "true"}), container_name="server")
    result = one("controlplane.apiserver-profiling-disabled", pod)
    assert result.status.value == "fail"
    assert result.path == "spec.containers[0].args[9]"


def test_space_separated_values_are_read() -> None:
    flags = [word for flag in GOOD_FLAGS for word in flag.split("=", 1)]
    flags = [w for w in flags if w not in ("--anonymous-auth", "false", "--profiling")]
    flags += ["--anonymous-auth=false", "--profiling=false"]
    pod = kubeadm(*flags)
    assert {r.status.value for c in CHECKS for r in run(c, pod)} == {"pass"}


def test_a_shell_command_line_is_split() -> None:
    script = "exec /usr/local/bin/kube-apiserver " + " ".join(with_flags({"profiling": "true"}))
    pod = apiserver_pod(["/bin/sh", "-c", script], labels={})
    result = one("controlplane.apiserver-profiling-disabled", pod)
    assert result.status.value == "fail"
    assert result.path == "spec.containers[0].command[2]"


def test_found_by_command_without_labels_but_only_in_kube_system() -> None:
    unlabelled = apiserver_pod(["kube-apiserver", "--profiling=true"], labels={})
    assert statuses(run("controlplane.apiserver-profiling-disabled", unlabelled)) == ["fail"]
    # A kube-apiserver in a tenant namespace serves another cluster (vcluster and the like).
    tenant = apiserver_pod(["kube-apiserver", "--profiling=true"], namespace="tenant-a")
    assert run("controlplane.apiserver-profiling-disabled", tenant) == []


def test_a_static_pod_manifest_without_namespace_is_judged() -> None:
    pod = apiserver_pod(["kube-apiserver", "--profiling=true"], namespace=None)
    assert statuses(run("controlplane.apiserver-profiling-disabled", pod)) == ["fail"]


def test_every_apiserver_of_an_ha_control_plane_is_judged() -> None:
    good = kubeadm(*GOOD_FLAGS)
    bad = apiserver_pod(["kube-apiserver", *with_flags({"profiling": "true"})],
                        name="kube-apiserver-node2")  # fmt: skip
    result = one("controlplane.apiserver-profiling-disabled", good, bad)
    assert result.status.value == "fail"
    assert "kube-apiserver-node2" in result.message
    assert "kube-apiserver-node1" not in result.message


def test_labelled_pod_without_an_apiserver_container_is_not_evaluated() -> None:
    pod = apiserver_pod(["/pause"], container_name="pause", image="registry.k8s.io/pause:3.10")
    result = one("controlplane.apiserver-profiling-disabled", pod)
    assert result.status.value == "not_evaluated"
    assert "no container in it runs kube-apiserver" in (result.reason or "")


@pytest.mark.parametrize(
    "command",
    [
        "kube-apiserver --profiling=false",  # not a list
        [1, None, {"a": 1}],
        ["/bin/sh", "-c", "kube-apiserver --audit-log-path='unbalanced"],
        ["/bin/sh", "-c"],
    ],
)
def test_hostile_command_lines_do_not_crash(command: Any) -> None:
    pod = apiserver_pod(command)
    for check_id in CHECKS:
        for result in run(check_id, pod):
            assert result.status.value in ("fail", "not_evaluated")
            assert "check error" not in result.message


def test_hostile_pod_fields_do_not_crash() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "x", "namespace": "kube-system", "labels": "component"},
           "spec": {"containers": "kube-apiserver"}}  # fmt: skip
    for check_id in CHECKS:
        assert run(check_id, pod) == []


def test_parse_flags_follows_pflag() -> None:
    words = [(w, f"w[{i}]") for i, w in enumerate(
        ["--a=1", "--b", "2", "--profiling", "--c", "--", "--d=4", "-v=2"])]  # fmt: skip
    flags = parse_flags(words)
    assert {k: [f.value for f in v] for k, v in flags.items()} == {
        "a": ["1"],
        "b": ["2"],
        "profiling": ["true"],
        "c": [""],
    }
    assert flags["b"][0].path == "w[2]"
