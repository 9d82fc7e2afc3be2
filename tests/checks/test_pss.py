"""Pod Security Standards checks: the semantics the upstream fixtures cover thinly —
version gates, Windows and user-namespace exemptions, messages and paths, and input of
the wrong type. The fixture-by-fixture conformance run is test_pss_conformance.py."""

from __future__ import annotations

from typing import Any

import pytest

from checks.helpers import failing, run, statuses
from kubeproof.model import Result, Status

RESTRICTED_CONTAINER: dict[str, Any] = {
    "name": "app",
    "image": "registry.example/app:1",
    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
}
RESTRICTED_POD_CONTEXT = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def pod(
    *,
    containers: list[Any] | None = None,
    annotations: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A Pod named `web` whose containers default to one restricted-compliant `app`."""
    metadata: dict[str, Any] = {"name": "web", "namespace": "shop"}
    if annotations is not None:
        metadata["annotations"] = annotations
    body = {"containers": containers if containers is not None else [RESTRICTED_CONTAINER]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": body}


def container(**security_context: Any) -> dict[str, Any]:
    return {"name": "app", "image": "registry.example/app:1", "securityContext": security_context}


def deployment(pod_object: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": pod_object["metadata"], "spec": pod_object["spec"]},
        },
    }


def one(results: list[Result]) -> Result:
    assert len(results) == 1, results
    return results[0]


def verdict(check_id: str, obj: dict[str, Any], minor: int = 37) -> str | None:
    """pass / fail / not_evaluated at policy version v1.<minor>; None when not applicable."""
    results = run(check_id, obj, pss_version=(1, minor))
    return one(results).status.value if results else None


# --- messages and paths follow upstream's "reason (detail)" wording -------------------------


def test_host_namespaces_names_each_namespace_with_its_path() -> None:
    result = one(run("pss.host-namespaces", pod(hostNetwork=True, hostIPC=True)))
    assert result.status is Status.FAIL
    assert result.message == "host namespaces (hostNetwork=true); host namespaces (hostIPC=true)"
    assert result.path == "spec.hostNetwork"
    assert [v["path"] for v in result.extra["violations"]] == ["spec.hostNetwork", "spec.hostIPC"]


def test_privileged_message_and_path_in_a_deployment() -> None:
    result = one(run("pss.privileged", deployment(pod(containers=[container(privileged=True)]))))
    assert result.message == (
        'privileged (container "app" must not set securityContext.privileged=true)'
    )
    assert result.path == "spec.template.spec.containers[0].securityContext.privileged"


def test_every_container_list_is_judged_including_ephemeral_containers() -> None:
    debug = {"name": "debug", "image": "busybox", "securityContext": {"privileged": True}}
    result = one(run("pss.privileged", pod(ephemeralContainers=[debug])))
    assert result.status is Status.FAIL
    assert result.path == "spec.ephemeralContainers[0].securityContext.privileged"


@pytest.mark.parametrize(
    ("check_id", "passing", "failing_pod", "message", "path"),
    [
        (
            "pss.host-ports",
            pod(containers=[{"name": "app", "ports": [{"containerPort": 80, "hostPort": 0}]}]),
            pod(containers=[{"name": "app", "ports": [{"containerPort": 80, "hostPort": 8080}]}]),
            'hostPort (container "app" uses hostPort 8080)',
            "spec.containers[0].ports[0].hostPort",
        ),
        (
            "pss.host-path-volumes",
            pod(volumes=[{"name": "data", "emptyDir": {}}]),
            pod(volumes=[{"name": "data", "hostPath": {"path": "/var/run/docker.sock"}}]),
            'hostPath volumes (volume "data")',
            "spec.volumes[0].hostPath",
        ),
        (
            "pss.capabilities-baseline",
            pod(containers=[container(capabilities={"add": ["CHOWN", "NET_BIND_SERVICE"]})]),
            pod(containers=[container(capabilities={"add": ["SYS_ADMIN", "NET_RAW", "CHOWN"]})]),
            'non-default capabilities (container "app" must not include "NET_RAW", "SYS_ADMIN" '
            "in securityContext.capabilities.add)",
            "spec.containers[0].securityContext.capabilities.add",
        ),
        (
            "pss.windows-host-process",
            pod(securityContext={"windowsOptions": {"hostProcess": False}}),
            pod(securityContext={"windowsOptions": {"hostProcess": True}}),
            "hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true)",
            "spec.securityContext.windowsOptions.hostProcess",
        ),
        (
            "pss.host-probes-and-host-lifecycle",
            pod(containers=[{"name": "app", "livenessProbe": {"httpGet": {"port": 80}}}]),
            pod(
                containers=[
                    {
                        "name": "app",
                        "lifecycle": {"preStop": {"httpGet": {"host": "10.0.0.1", "port": 80}}},
                    }
                ]
            ),
            'probe or lifecycle host (container "app" uses probe or lifecycle host "10.0.0.1")',
            "spec.containers[0].lifecycle.preStop.httpGet.host",
        ),
        (
            "pss.se-linux-options",
            pod(securityContext={"seLinuxOptions": {"type": "container_t", "level": "s0:c1"}}),
            pod(securityContext={"seLinuxOptions": {"role": "sysadm_r"}}),
            "seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: "
            "role may not be set)",
            "spec.securityContext.seLinuxOptions.role",
        ),
        (
            "pss.app-armor-profile",
            pod(securityContext={"appArmorProfile": {"type": "RuntimeDefault"}}),
            pod(containers=[container(appArmorProfile={"type": "Unconfined"})]),
            'forbidden AppArmor profile (container "app" must not set '
            'securityContext.appArmorProfile.type to "Unconfined")',
            "spec.containers[0].securityContext.appArmorProfile.type",
        ),
        (
            "pss.restricted-volumes",
            pod(
                volumes=[
                    {"name": "cfg", "configMap": {"name": "cfg"}},
                    {"name": "img", "image": {"reference": "registry.example/data:1"}},
                ]
            ),
            pod(volumes=[{"name": "share", "nfs": {"server": "nfs.example", "path": "/"}}]),
            'restricted volume types (volume "share" uses restricted volume type "nfs")',
            "spec.volumes[0].nfs",
        ),
        (
            "pss.run-as-user",
            pod(securityContext={**RESTRICTED_POD_CONTEXT, "runAsUser": 1000}),
            pod(
                containers=[
                    {
                        **RESTRICTED_CONTAINER,
                        "securityContext": {
                            **RESTRICTED_CONTAINER["securityContext"],
                            "runAsUser": 0,
                        },
                    }
                ]
            ),
            'runAsUser=0 (container "app" must not set runAsUser=0)',
            "spec.containers[0].securityContext.runAsUser",
        ),
        (
            "pss.allow-privilege-escalation",
            pod(),
            pod(containers=[container(allowPrivilegeEscalation=True)]),
            'allowPrivilegeEscalation != false (container "app" must set '
            "securityContext.allowPrivilegeEscalation=false)",
            "spec.containers[0].securityContext.allowPrivilegeEscalation",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) and value.startswith("pss.") else "",
)
def test_pass_and_fail(
    check_id: str, passing: dict[str, Any], failing_pod: dict[str, Any], message: str, path: str
) -> None:
    assert statuses(run(check_id, passing)) == ["pass"]
    result = one(run(check_id, failing_pod))
    assert (result.status, result.message, result.path) == (Status.FAIL, message, path)


def test_several_offenders_are_each_listed_with_their_path() -> None:
    result = one(
        run(
            "pss.privileged",
            pod(
                containers=[
                    container(privileged=True),
                    {**container(privileged=True), "name": "b"},
                ],
            ),
        )
    )
    assert [v["path"] for v in result.extra["violations"]] == [
        "spec.containers[0].securityContext.privileged",
        "spec.containers[1].securityContext.privileged",
    ]


def test_sysctl_messages_name_the_sysctl_never_its_value() -> None:
    sysctl = {"name": "kernel.msgmax", "value": "s3cr3t-looking-value"}
    result = one(run("pss.sysctls", pod(securityContext={"sysctls": [sysctl]})))
    assert result.message == "forbidden sysctls (kernel.msgmax)"
    assert "s3cr3t" not in str(result)
    assert result.path == "spec.securityContext.sysctls[0].name"


# --- versions: a check that did not exist yet does not apply --------------------------------


@pytest.mark.parametrize(
    ("check_id", "first_minor", "offending"),
    [
        ("pss.allow-privilege-escalation", 8, pod(containers=[container()])),
        ("pss.seccomp-profile-restricted", 19, pod()),
        ("pss.capabilities-restricted", 22, pod(containers=[container()])),
        ("pss.run-as-user", 23, pod(securityContext={"runAsUser": 0})),
        (
            "pss.host-probes-and-host-lifecycle",
            34,
            pod(containers=[{"name": "app", "readinessProbe": {"tcpSocket": {"host": "::1"}}}]),
        ),
        ("pss.proc-mount-restricted", 35, pod(containers=[container(procMount="Unmasked")])),
    ],
)
def test_checks_apply_from_the_version_they_appeared_in(
    check_id: str, first_minor: int, offending: dict[str, Any]
) -> None:
    assert verdict(check_id, offending, first_minor - 1) is None
    assert verdict(check_id, offending, first_minor) == "fail"
    assert verdict(check_id, offending, 37) == "fail"


@pytest.mark.parametrize(
    ("sysctl", "first_minor"),
    [
        ("kernel.shm_rmid_forced", 0),
        ("net.ipv4.ip_local_reserved_ports", 27),
        ("net.ipv4.tcp_keepalive_probes", 29),
        ("net.ipv4.tcp_wmem", 32),
        ("net.ipv4.tcp_notsent_lowat", 37),
    ],
)
def test_the_safe_sysctl_list_grows_by_version(sysctl: str, first_minor: int) -> None:
    subject = pod(securityContext={"sysctls": [{"name": sysctl, "value": "1"}]})
    if first_minor:
        assert verdict("pss.sysctls", subject, first_minor - 1) == "fail"
    assert verdict("pss.sysctls", subject, first_minor) == "pass"
    assert verdict("pss.sysctls", subject, 37) == "pass"


def test_selinux_container_engine_t_is_allowed_from_1_31() -> None:
    subject = pod(securityContext={"seLinuxOptions": {"type": "container_engine_t"}})
    assert verdict("pss.se-linux-options", subject, 30) == "fail"
    assert verdict("pss.se-linux-options", subject, 31) == "pass"


def test_seccomp_baseline_reads_annotations_before_1_19_and_fields_after() -> None:
    annotated = pod(annotations={"seccomp.security.alpha.kubernetes.io/pod": "unconfined"})
    assert verdict("pss.seccomp-profile-baseline", annotated, 18) == "fail"
    assert verdict("pss.seccomp-profile-baseline", annotated, 19) == "pass"
    field = pod(securityContext={"seccompProfile": {"type": "Unconfined"}})
    assert verdict("pss.seccomp-profile-baseline", field, 18) == "pass"
    assert verdict("pss.seccomp-profile-baseline", field, 19) == "fail"


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({"container.seccomp.security.alpha.kubernetes.io/app": "docker/default"}, "pass"),
        ({"container.seccomp.security.alpha.kubernetes.io/app": "localhost/audit.json"}, "pass"),
        # Upstream allows no empty value here (unlike AppArmor's annotation).
        ({"container.seccomp.security.alpha.kubernetes.io/app": ""}, "fail"),
        # An annotation naming no container of the pod configures nothing.
        ({"container.seccomp.security.alpha.kubernetes.io/other": "unconfined"}, "pass"),
    ],
)
def test_seccomp_annotations_before_1_19(annotations: dict[str, str], expected: str) -> None:
    assert verdict("pss.seccomp-profile-baseline", pod(annotations=annotations), 18) == expected


def test_apparmor_fields_are_judged_at_every_version_and_annotations_in_templates() -> None:
    field = pod(securityContext={"appArmorProfile": {"type": "Unconfined"}})
    assert verdict("pss.app-armor-profile", field, 0) == "fail"
    key = "container.apparmor.security.beta.kubernetes.io/app"
    annotated = deployment(pod(annotations={key: "unconfined"}))
    result = one(run("pss.app-armor-profile", annotated))
    assert result.message == f'forbidden AppArmor profile ({key}="unconfined")'
    assert verdict("pss.app-armor-profile", pod(annotations={key: ""})) == "pass"
    assert verdict("pss.app-armor-profile", pod(annotations={key: "localhost/k8s"})) == "pass"


def test_a_namespace_enforce_version_label_overrides_the_requested_version() -> None:
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "shop",
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "v1.22",
            },
        },
    }
    subject = pod(securityContext={**RESTRICTED_POD_CONTEXT, "runAsUser": 0})
    assert run("pss.run-as-user", namespace, subject, pss_level="restricted") == []
    assert statuses(run("pss.run-as-user", subject, pss_level="restricted")) == ["fail"]


def test_a_namespace_enforce_level_label_overrides_the_requested_level() -> None:
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "shop", "labels": {"pod-security.kubernetes.io/enforce": "baseline"}},
    }
    subject = pod(securityContext={**RESTRICTED_POD_CONTEXT, "runAsUser": 0})
    (result,) = run("pss.run-as-user", namespace, subject, pss_level="restricted")
    assert result.status.value == "excepted"
    assert "sets level baseline" in result.message
    # Outside the pss frameworks the label changes nothing: the soc2 view judges every pod.
    assert statuses(run("pss.run-as-user", namespace, subject)) == ["fail"]


# --- Windows pods and user namespaces ------------------------------------------------------


@pytest.mark.parametrize(
    "check_id",
    [
        "pss.allow-privilege-escalation",
        "pss.seccomp-profile-restricted",
        "pss.capabilities-restricted",
    ],
)
def test_windows_pods_are_exempt_from_linux_only_restricted_checks_from_1_25(
    check_id: str,
) -> None:
    windows = pod(containers=[{"name": "app", "image": "mcr.example/app"}], os={"name": "windows"})
    assert verdict(check_id, windows, 24) == "fail"
    assert verdict(check_id, windows, 25) is None
    linux = pod(containers=[{"name": "app", "image": "app"}], os={"name": "linux"})
    assert verdict(check_id, linux, 25) == "fail"


def test_windows_pods_must_still_run_as_non_root() -> None:
    windows = pod(containers=[{"name": "app"}], os={"name": "windows"})
    assert verdict("pss.run-as-non-root", windows) == "fail"


@pytest.mark.parametrize(
    ("check_id", "subject"),
    [
        ("pss.run-as-non-root", pod(containers=[container()])),
        ("pss.run-as-user", pod(securityContext={"runAsUser": 0})),
        ("pss.proc-mount", pod(containers=[container(procMount="Unmasked")])),
    ],
)
def test_user_namespaces_relax_checks_from_1_35(check_id: str, subject: dict[str, Any]) -> None:
    in_user_namespace = {**subject, "spec": {**subject["spec"], "hostUsers": False}}
    on_host_users = {**subject, "spec": {**subject["spec"], "hostUsers": True}}
    assert verdict(check_id, in_user_namespace, 34) == "fail"
    assert verdict(check_id, in_user_namespace, 35) == "pass"
    assert verdict(check_id, on_host_users, 35) == "fail"
    assert verdict(check_id, subject, 35) == "fail"


def test_restricted_keeps_proc_masked_even_in_a_user_namespace() -> None:
    subject = pod(containers=[container(procMount="Unmasked")], hostUsers=False)
    assert verdict("pss.proc-mount", subject) == "pass"
    result = one(run("pss.proc-mount-restricted", subject))
    assert result.message == (
        'procMount (container "app" must not set securityContext.procMount to "Unmasked")'
    )


# --- upstream's finer points -----------------------------------------------------------------


def test_run_as_non_root_reports_explicit_false_before_inherited_gaps() -> None:
    # The pod sets false; the container inherits. Fixing the pod fixes both, so only the
    # pod is reported, as upstream does.
    result = one(run("pss.run-as-non-root", pod(securityContext={"runAsNonRoot": False})))
    assert result.message == (
        "runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)"
    )
    unset = one(run("pss.run-as-non-root", pod()))
    assert unset.message == (
        'runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true)'
    )
    per_container = pod(containers=[container(runAsNonRoot=True)])
    assert verdict("pss.run-as-non-root", per_container) == "pass"


def test_seccomp_restricted_inherits_from_the_pod_and_flags_explicit_values_first() -> None:
    inherited = pod(
        securityContext={"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}
    )
    assert verdict("pss.seccomp-profile-restricted", inherited) == "pass"
    mixed = pod(
        securityContext={"seccompProfile": {"type": "Unconfined"}},
        containers=[
            container(seccompProfile={"type": "RuntimeDefault"}),
            {"name": "side", "image": "side"},
        ],
    )
    result = one(run("pss.seccomp-profile-restricted", mixed))
    assert result.message == (
        'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")'
    )
    # A profile with no type is not RuntimeDefault or Localhost.
    untyped = pod(securityContext={"seccompProfile": {}})
    assert verdict("pss.seccomp-profile-baseline", untyped) == "fail"


@pytest.mark.parametrize(
    ("capabilities", "expected"),
    [
        ({"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}, "pass"),
        ({"drop": ["all"]}, "fail"),  # upstream matches "ALL" exactly
        ({"drop": ["NET_RAW", "SYS_ADMIN"]}, "fail"),
        ({"drop": ["ALL"], "add": ["CHOWN"]}, "fail"),
    ],
)
def test_capabilities_restricted(capabilities: dict[str, Any], expected: str) -> None:
    subject = pod(containers=[container(capabilities=capabilities)])
    assert verdict("pss.capabilities-restricted", subject) == expected


@pytest.mark.parametrize("spelling", ["chown", "CAP_CHOWN"])
def test_baseline_capabilities_are_matched_exactly(spelling: str) -> None:
    subject = pod(containers=[container(capabilities={"add": [spelling]})])
    assert verdict("pss.capabilities-baseline", subject) == "fail"


@pytest.mark.parametrize(
    ("volume", "expected"),
    [
        ({"name": "scratch"}, "pass"),  # no source: the API server makes it an emptyDir
        ({"name": "scratch", "emptyDir": None}, "pass"),
        ({"name": "eph", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}, "pass"),
        ({"name": "csi", "csi": {"driver": "secrets-store.csi.k8s.io"}}, "pass"),
        ({"name": "x", "futureVolumeType": {}}, "fail"),  # unknown: not allowed
        ({"name": "h", "hostPath": {"path": "/"}}, "fail"),
    ],
)
def test_restricted_volume_types(volume: dict[str, Any], expected: str) -> None:
    assert verdict("pss.restricted-volumes", pod(volumes=[volume]), 0) == expected


def test_a_hostpath_volume_fails_both_its_baseline_and_restricted_checks() -> None:
    subject = pod(volumes=[{"name": "h", "hostPath": {"path": "/"}}])
    for check_id in ("pss.host-path-volumes", "pss.restricted-volumes"):
        assert len(failing(run(check_id, subject))) == 1


# --- hostile input: what cannot be read is not judged ---------------------------------------


@pytest.mark.parametrize(
    ("check_id", "subject", "reason"),
    [
        (
            "pss.privileged",
            pod(containers=[container(privileged="true")]),
            "containers[0].securityContext.privileged is a string, not a boolean",
        ),
        ("pss.privileged", pod(containers=["app"]), "containers[0] is a string, not a mapping"),
        (
            "pss.privileged",
            pod(initContainers={"name": "init"}),
            "initContainers is a mapping, not a list",
        ),
        (
            "pss.host-ports",
            pod(containers=[{"name": "app", "ports": [{"hostPort": "8080"}]}]),
            "containers[0].ports[0].hostPort is a string, not an integer",
        ),
        (
            "pss.run-as-user",
            pod(securityContext={"runAsUser": True}),
            "securityContext.runAsUser is a boolean, not an integer",
        ),
        (
            "pss.capabilities-baseline",
            pod(containers=[container(capabilities={"add": "ALL"})]),
            "containers[0].securityContext.capabilities.add is a string, not a list",
        ),
        ("pss.host-namespaces", pod(hostPID="yes"), "hostPID is a string, not a boolean"),
        ("pss.restricted-volumes", pod(volumes=[None]), "volumes[0] is null, not a mapping"),
        (
            "pss.allow-privilege-escalation",
            pod(containers=[{"name": "a", "securityContext": []}]),
            "containers[0].securityContext is a list, not a mapping",
        ),
    ],
)
def test_fields_of_the_wrong_type_are_not_evaluated(
    check_id: str, subject: dict[str, Any], reason: str
) -> None:
    result = one(run(check_id, subject))
    assert result.status is Status.NOT_EVALUATED
    assert result.reason == reason
