"""The Kubernetes Pod Security Standards, check for check as the built-in Pod Security
admission judges them (k8s.io/pod-security-admission, policy/check_*.go).

Each upstream check is one workload-scope function here, versioned like upstream: the
policy version comes from `ctx.pss_policy(namespace)` (a namespace's enforce-version
label, or what was asked for), and a check that did not exist yet in that version does
not apply. Messages keep upstream's "reason (detail)" wording, one violation per
offending field so each carries its own path (relative to the pod spec).

Fields of the wrong type make a check `not_evaluated` rather than pass or fail: the API
server would have refused such an object, and nothing can honestly be said about it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from kubeproof.checks.registry import NotApplicable, NotEvaluated, Violation, check
from kubeproof.inventory.workloads import CONTAINER_LISTS, Container, Workload

if TYPE_CHECKING:
    from kubeproof.engine import Context

Version = tuple[int, int]
T = TypeVar("T")

# --- versions, and what changed in them -------------------------------------------------

V1_0: Version = (1, 0)
# allowPrivilegeEscalation: the field exists from 1.8.
V1_8: Version = (1, 8)
# seccompProfile fields replace the alpha annotations; seccompProfile_restricted appears.
V1_19: Version = (1, 19)
V1_22: Version = (1, 22)  # capabilities_restricted
V1_23: Version = (1, 23)  # runAsUser
# Restricted checks about Linux-only fields stop applying to pods with spec.os.name=windows.
V1_25: Version = (1, 25)
V1_31: Version = (1, 31)  # SELinux type container_engine_t allowed
V1_34: Version = (1, 34)  # hostProbesAndHostLifecycle
# User namespaces (hostUsers: false) relax procMount (baseline), runAsNonRoot and
# runAsUser; procMount_restricted keeps the strict rule for restricted namespaces.
V1_35: Version = (1, 35)

# Capabilities a baseline container may add: the container runtime's default set.
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
CAPABILITY_ALL = "ALL"
CAPABILITY_NET_BIND_SERVICE = "NET_BIND_SERVICE"

# The "safe" sysctls, with the policy version each became allowed in.
SAFE_SYSCTLS: tuple[tuple[Version, frozenset[str]], ...] = (
    (
        V1_0,
        frozenset(
            {
                "kernel.shm_rmid_forced",
                "net.ipv4.ip_local_port_range",
                "net.ipv4.tcp_syncookies",
                "net.ipv4.ping_group_range",
                "net.ipv4.ip_unprivileged_port_start",
            }
        ),
    ),
    ((1, 27), frozenset({"net.ipv4.ip_local_reserved_ports"})),
    (
        (1, 29),
        frozenset(
            {
                "net.ipv4.tcp_keepalive_time",
                "net.ipv4.tcp_fin_timeout",
                "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes",
            }
        ),
    ),
    ((1, 32), frozenset({"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"})),
    ((1, 37), frozenset({"net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"})),
)

SELINUX_TYPES_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
SELINUX_TYPES_1_31 = SELINUX_TYPES_1_0 | {"container_engine_t"}

SECCOMP_ALLOWED_TYPES = frozenset({"RuntimeDefault", "Localhost"})
SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_ANNOTATION_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"

APPARMOR_ALLOWED_TYPES = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"

# Volume sources a restricted pod may use: those that carry no node or network access of
# their own (the image volume was added to the 1.0 rule upstream, so it holds at every
# version).
RESTRICTED_ALLOWED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)

PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
LIFECYCLE_HANDLERS = ("postStart", "preStop")
HANDLER_ACTIONS = ("httpGet", "tcpSocket")


# --- reading the pod spec: typed, and honest about what could not be read ----------------

_TYPE_NAMES = {
    bool: "a boolean",
    int: "an integer",
    str: "a string",
    list: "a list",
    dict: "a mapping",
}


def _of_type(value: Any, path: str, kind: type[T]) -> T:
    """`value` when it has the expected type; NotEvaluated naming the field otherwise."""
    if type(value) is kind:  # the common case, and the cheapest test
        return value
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    found = "null" if value is None else _TYPE_NAMES.get(type(value), type(value).__name__)
    raise NotEvaluated(f"{path} is {found}, not {_TYPE_NAMES.get(kind, kind.__name__)}")


def _typed(mapping: dict[str, Any], key: str, path: str, kind: type[T]) -> T | None:
    """The field, or None when it is missing or null."""
    value = mapping.get(key)
    return None if value is None else _of_type(value, path, kind)


def _mapping(mapping: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    return _typed(mapping, key, path, dict) or {}


def _items(mapping: dict[str, Any], key: str, path: str, kind: type[T]) -> list[tuple[int, T]]:
    """The (index, item) pairs of a list field whose items must all be of one type."""
    items = _typed(mapping, key, path, list) or []
    return [(i, _of_type(item, f"{path}[{i}]", kind)) for i, item in enumerate(items)]


def _containers(workload: Workload) -> list[Container]:
    """Every container upstream visits (init, regular, ephemeral), after making sure none
    was left out of the workload's list for being malformed."""
    listed = 0
    for list_name in CONTAINER_LISTS:
        items = workload.pod_spec.get(list_name)
        if items is not None:
            listed += len(_of_type(items, list_name, list))
    if listed != len(workload.containers):  # some entry was not a mapping: name it
        for list_name in CONTAINER_LISTS:
            _items(workload.pod_spec, list_name, list_name, dict)
    return workload.containers


def _security_context(container: Container) -> tuple[dict[str, Any], str]:
    path = f"{container.path}.securityContext"
    return _mapping(container.spec, "securityContext", path), path


def _pod_security_context(workload: Workload) -> dict[str, Any]:
    return _mapping(workload.pod_spec, "securityContext", "securityContext")


def _security_contexts(workload: Workload) -> list[tuple[str, dict[str, Any], str]]:
    """(who, securityContext, its path) for the pod, then for each container."""
    found = [("pod", _pod_security_context(workload), "securityContext")]
    for container in _containers(workload):
        context, path = _security_context(container)
        found.append((_container_label(container), context, path))
    return found


def _volumes(workload: Workload) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, name, volume) for each volume."""
    for index, volume in _items(workload.pod_spec, "volumes", "volumes", dict):
        path = f"volumes[{index}]"
        yield path, _typed(volume, "name", f"{path}.name", str) or path, volume


def _annotations(workload: Workload, prefix: str) -> list[tuple[str, str]]:
    """The pod template's annotations whose key starts with `prefix`, sorted by key."""
    annotations = _mapping(workload.pod_metadata, "annotations", "metadata.annotations")
    found = []
    for key in sorted(k for k in annotations if isinstance(k, str) and k.startswith(prefix)):
        value = _typed(annotations, key, f"metadata.annotations[{key}]", str)
        found.append((key, value or ""))
    return found


def _quote(text: str) -> str:
    return f'"{text}"'


def _quote_all(items: list[str]) -> str:
    return ", ".join(_quote(i) for i in items)


def _container_label(container: Container) -> str:
    return f"container {_quote(container.name)}"


# --- versions and exemptions --------------------------------------------------------------


def _policy_version(workload: Workload, ctx: Context, minimum: Version) -> Version:
    """The policy version that judges this workload; NotApplicable before `minimum`,
    the version in which the check first appeared."""
    version = ctx.pss_policy(workload.namespace).version
    if version < minimum:
        raise NotApplicable
    return version


def _is_windows(workload: Workload) -> bool:
    os = _mapping(workload.pod_spec, "os", "os")
    return _typed(os, "name", "os.name", str) == "windows"


def _skip_windows_from_1_25(workload: Workload, version: Version) -> None:
    # From 1.25 the restricted checks on Linux-only fields exempt Windows pods.
    if version >= V1_25 and _is_windows(workload):
        raise NotApplicable


def _in_user_namespace(workload: Workload) -> bool:
    return _typed(workload.pod_spec, "hostUsers", "hostUsers", bool) is False


# --- baseline -------------------------------------------------------------------------------


@check("pss.host-namespaces")
def host_namespaces(workload: Workload, ctx: Context) -> Iterator[Violation]:
    _policy_version(workload, ctx, V1_0)
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if _typed(workload.pod_spec, field, field, bool):
            yield Violation(f"host namespaces ({field}=true)", field)


@check("pss.privileged")
def privileged(workload: Workload, ctx: Context) -> Iterator[Violation]:
    _policy_version(workload, ctx, V1_0)
    for container in _containers(workload):
        context, path = _security_context(container)
        if _typed(context, "privileged", f"{path}.privileged", bool):
            yield Violation(
                f"privileged ({_container_label(container)} must not set "
                "securityContext.privileged=true)",
                f"{path}.privileged",
            )


@check("pss.capabilities-baseline")
def capabilities_baseline(workload: Workload, ctx: Context) -> Iterator[Violation]:
    _policy_version(workload, ctx, V1_0)
    for container in _containers(workload):
        context, path = _security_context(container)
        capabilities = _mapping(context, "capabilities", f"{path}.capabilities")
        added = _items(capabilities, "add", f"{path}.capabilities.add", str)
        # Exact, case-sensitive names: "chown" and "CAP_CHOWN" are not in the default set.
        extra = sorted({name for _, name in added if name not in BASELINE_CAPABILITIES})
        if extra:
            yield Violation(
                f"non-default capabilities ({_container_label(container)} must not include "
                f"{_quote_all(extra)} in securityContext.capabilities.add)",
                f"{path}.capabilities.add",
            )


@check("pss.host-path-volumes")
def host_path_volumes(workload: Workload, ctx: Context) -> Iterator[Violation]:
    _policy_version(workload, ctx, V1_0)
    for path, name, volume in _volumes(workload):
        if _typed(volume, "hostPath", f"{path}.hostPath", dict) is not None:
            yield Violation(f"hostPath volumes (volume {_quote(name)})", f"{path}.hostPath")


@check("pss.host-ports")
def host_ports(workload: Workload, ctx: Context) -> Iterator[Violation]:
    _policy_version(workload, ctx, V1_0)
    for container in _containers(workload):
        ports_path = f"{container.path}.ports"
        for index, port in _items(container.spec, "ports", ports_path, dict):
            path = f"{ports_path}[{index}].hostPort"
            host_port = _typed(port, "hostPort", path, int)
            if host_port:
                yield Violation(
                    f"hostPort ({_container_label(container)} uses hostPort {host_port})", path
                )


@check("pss.app-armor-profile")
def app_armor_profile(workload: Workload, ctx: Context) -> Iterator[Violation]:
    # The securityContext.appArmorProfile fields were added to the 1.0 rule upstream, so
    # they are judged at every version, beside the older annotations.
    _policy_version(workload, ctx, V1_0)
    for who, context, path in _security_contexts(workload):
        profile = _mapping(context, "appArmorProfile", f"{path}.appArmorProfile")
        if not profile:
            continue
        type_path = f"{path}.appArmorProfile.type"
        profile_type = _typed(profile, "type", type_path, str) or ""
        if profile_type not in APPARMOR_ALLOWED_TYPES:
            yield Violation(
                f"forbidden AppArmor profile ({who} must not set "
                f"securityContext.appArmorProfile.type to {_quote(profile_type)})",
                type_path,
            )
    for key, value in _annotations(workload, APPARMOR_ANNOTATION_PREFIX):
        if not _allowed_apparmor_annotation(value):
            # An annotation has no path inside the pod spec; the message names it.
            yield Violation(f"forbidden AppArmor profile ({key}={_quote(value)})")


def _allowed_apparmor_annotation(value: str) -> bool:
    return value in ("", "runtime/default") or value.startswith("localhost/")


@check("pss.se-linux-options")
def se_linux_options(workload: Workload, ctx: Context) -> Iterator[Violation]:
    version = _policy_version(workload, ctx, V1_0)
    allowed_types = SELINUX_TYPES_1_31 if version >= V1_31 else SELINUX_TYPES_1_0
    for who, context, path in _security_contexts(workload):
        options_path = f"{path}.seLinuxOptions"
        options = _mapping(context, "seLinuxOptions", options_path)
        prefix = f"seLinuxOptions ({who} set forbidden securityContext.seLinuxOptions:"
        selinux_type = _typed(options, "type", f"{options_path}.type", str) or ""
        if selinux_type not in allowed_types:
            yield Violation(f"{prefix} type {_quote(selinux_type)})", f"{options_path}.type")
        for field in ("user", "role"):
            if _typed(options, field, f"{options_path}.{field}", str):
                yield Violation(f"{prefix} {field} may not be set)", f"{options_path}.{field}")


def _unmasked_proc_mounts(workload: Workload) -> Iterator[Violation]:
    for container in _containers(workload):
        context, path = _security_context(container)
        proc_mount = _typed(context, "procMount", f"{path}.procMount", str)
        if proc_mount is not None and proc_mount != "Default":
            yield Violation(
                f"procMount ({_container_label(container)} must not set "
                f"securityContext.procMount to {_quote(proc_mount)})",
                f"{path}.procMount",
            )


@check("pss.proc-mount")
def proc_mount(workload: Workload, ctx: Context) -> Iterator[Violation]:
    version = _policy_version(workload, ctx, V1_0)
    if version >= V1_35 and _in_user_namespace(workload):
        return  # an unmasked /proc inside a user namespace does not expose the host's
    yield from _unmasked_proc_mounts(workload)


@check("pss.seccomp-profile-baseline")
def seccomp_profile_baseline(workload: Workload, ctx: Context) -> Iterator[Violation]:
    version = _policy_version(workload, ctx, V1_0)
    if version < V1_19:
        yield from _unconfined_seccomp_annotations(workload)
        return
    for who, profile_type, path in _seccomp_types(workload):
        if profile_type is not None and profile_type not in SECCOMP_ALLOWED_TYPES:
            yield _seccomp_type_violation(who, profile_type, path)


def _unconfined_seccomp_annotations(workload: Workload) -> Iterator[Violation]:
    """Before 1.19 seccomp was set by alpha annotations: pod-wide and per container."""
    wanted = {SECCOMP_POD_ANNOTATION}
    wanted.update(SECCOMP_CONTAINER_ANNOTATION_PREFIX + c.name for c in _containers(workload))
    found = dict(_annotations(workload, SECCOMP_POD_ANNOTATION))
    found.update(_annotations(workload, SECCOMP_CONTAINER_ANNOTATION_PREFIX))
    for key in sorted(wanted & found.keys()):
        if not _allowed_seccomp_annotation(found[key]):
            yield Violation(f"seccompProfile (forbidden annotation {key}={_quote(found[key])})")


def _allowed_seccomp_annotation(value: str) -> bool:
    return value in ("runtime/default", "docker/default") or value.startswith("localhost/")


def _seccomp_types(workload: Workload) -> Iterator[tuple[str, str | None, str]]:
    """(who, seccompProfile.type or None when no profile is set, path) for the pod, then
    each container. A profile without a type has type ""."""
    for who, context, path in _security_contexts(workload):
        profile_path = f"{path}.seccompProfile"
        profile = _typed(context, "seccompProfile", profile_path, dict)
        if profile is None:
            yield who, None, f"{profile_path}.type"
        else:
            profile_type = _typed(profile, "type", f"{profile_path}.type", str) or ""
            yield who, profile_type, f"{profile_path}.type"


def _seccomp_type_violation(who: str, profile_type: str, path: str) -> Violation:
    return Violation(
        f"seccompProfile ({who} must not set securityContext.seccompProfile.type to "
        f"{_quote(profile_type)})",
        path,
    )


@check("pss.sysctls")
def sysctls(workload: Workload, ctx: Context) -> Iterator[Violation]:
    version = _policy_version(workload, ctx, V1_0)
    safe = _safe_sysctls(version)
    context = _pod_security_context(workload)
    for index, entry in _items(context, "sysctls", "securityContext.sysctls", dict):
        path = f"securityContext.sysctls[{index}].name"
        name = _typed(entry, "name", path, str) or ""
        if name not in safe:
            # The name only: a sysctl's value is the user's business and may be sensitive.
            yield Violation(f"forbidden sysctls ({name})", path)


def _safe_sysctls(version: Version) -> frozenset[str]:
    safe: set[str] = set()
    for since, names in SAFE_SYSCTLS:
        if version >= since:
            safe.update(names)
    return frozenset(safe)


@check("pss.windows-host-process")
def windows_host_process(workload: Workload, ctx: Context) -> Iterator[Violation]:
    _policy_version(workload, ctx, V1_0)
    for who, context, path in _security_contexts(workload):
        options_path = f"{path}.windowsOptions"
        options = _mapping(context, "windowsOptions", options_path)
        if _typed(options, "hostProcess", f"{options_path}.hostProcess", bool):
            yield Violation(
                f"hostProcess ({who} must not set securityContext.windowsOptions.hostProcess=true)",
                f"{options_path}.hostProcess",
            )


@check("pss.host-probes-and-host-lifecycle")
def host_probes_and_host_lifecycle(workload: Workload, ctx: Context) -> Iterator[Violation]:
    _policy_version(workload, ctx, V1_34)
    for container in _containers(workload):
        # Fields left out are skipped before their paths are spelled out: most containers
        # set few of them, and the paths are only needed to name a finding or a bad type.
        handlers = [
            (path, _mapping(container.spec, probe, path))
            for probe in PROBES
            if container.spec.get(probe) is not None
            for path in (f"{container.path}.{probe}",)
        ]
        if container.spec.get("lifecycle") is not None:
            lifecycle_path = f"{container.path}.lifecycle"
            lifecycle = _mapping(container.spec, "lifecycle", lifecycle_path)
            handlers.extend(
                (path, _mapping(lifecycle, hook, path))
                for hook in LIFECYCLE_HANDLERS
                if lifecycle.get(hook) is not None
                for path in (f"{lifecycle_path}.{hook}",)
            )
        for handler_path, handler in handlers:
            for action in HANDLER_ACTIONS:
                if handler.get(action) is None:
                    continue
                action_path = f"{handler_path}.{action}"
                host_path = f"{action_path}.host"
                host = _typed(_mapping(handler, action, action_path), "host", host_path, str)
                if host:
                    # Probes and hooks run from the node: a host here points the kubelet
                    # at another machine on the pod's behalf.
                    yield Violation(
                        f"probe or lifecycle host ({_container_label(container)} uses "
                        f"probe or lifecycle host {_quote(host)})",
                        host_path,
                    )


# --- restricted -----------------------------------------------------------------------------


@check("pss.restricted-volumes")
def restricted_volumes(workload: Workload, ctx: Context) -> Iterator[Violation]:
    _policy_version(workload, ctx, V1_0)
    for path, name, volume in _volumes(workload):
        sources = sorted(
            k for k, v in volume.items() if isinstance(k, str) and k != "name" and v is not None
        )
        # A volume with no source is defaulted to emptyDir by the API server.
        if not sources or any(s in RESTRICTED_ALLOWED_VOLUMES for s in sources):
            continue
        # Unknown keys count as restricted types: what cannot be interpreted is not allowed.
        source = sources[0]
        yield Violation(
            f"restricted volume types (volume {_quote(name)} uses restricted volume type "
            f"{_quote(source)})",
            f"{path}.{source}",
        )


@check("pss.run-as-non-root")
def run_as_non_root(workload: Workload, ctx: Context) -> Iterator[Violation]:
    version = _policy_version(workload, ctx, V1_0)
    if version >= V1_35 and _in_user_namespace(workload):
        return  # root inside a user namespace maps to an unprivileged user on the node
    reason = "runAsNonRoot != true"
    pod_value = _typed(
        _pod_security_context(workload), "runAsNonRoot", "securityContext.runAsNonRoot", bool
    )
    explicit: list[Violation] = []
    implicit: list[Violation] = []
    if pod_value is False:
        explicit.append(
            Violation(
                f"{reason} (pod must not set securityContext.runAsNonRoot=false)",
                "securityContext.runAsNonRoot",
            )
        )
    for container in _containers(workload):
        context, path = _security_context(container)
        value = _typed(context, "runAsNonRoot", f"{path}.runAsNonRoot", bool)
        label = _container_label(container)
        if value is False:
            explicit.append(
                Violation(
                    f"{reason} ({label} must not set securityContext.runAsNonRoot=false)",
                    f"{path}.runAsNonRoot",
                )
            )
        elif value is None and pod_value is not True:
            implicit.append(
                Violation(
                    f"{reason} (pod or {label} must set securityContext.runAsNonRoot=true)",
                    f"{path}.runAsNonRoot",
                )
            )
    # As upstream: explicit false values first; a container that merely inherits is only
    # reported when nothing set false, since fixing the pod level may fix it too.
    yield from explicit or implicit


@check("pss.allow-privilege-escalation")
def allow_privilege_escalation(workload: Workload, ctx: Context) -> Iterator[Violation]:
    version = _policy_version(workload, ctx, V1_8)
    _skip_windows_from_1_25(workload, version)
    for container in _containers(workload):
        context, path = _security_context(container)
        field = f"{path}.allowPrivilegeEscalation"
        if _typed(context, "allowPrivilegeEscalation", field, bool) is not False:
            yield Violation(
                f"allowPrivilegeEscalation != false ({_container_label(container)} must set "
                "securityContext.allowPrivilegeEscalation=false)",
                field,
            )


@check("pss.seccomp-profile-restricted")
def seccomp_profile_restricted(workload: Workload, ctx: Context) -> Iterator[Violation]:
    version = _policy_version(workload, ctx, V1_19)
    _skip_windows_from_1_25(workload, version)
    setters = list(_seccomp_types(workload))
    _, pod_type, _ = setters[0]
    pod_valid = pod_type in SECCOMP_ALLOWED_TYPES
    explicit = [
        _seccomp_type_violation(who, profile_type, path)
        for who, profile_type, path in setters
        if profile_type is not None and profile_type not in SECCOMP_ALLOWED_TYPES
    ]
    implicit = [
        Violation(
            f"seccompProfile (pod or {who} must set securityContext.seccompProfile.type to "
            '"RuntimeDefault" or "Localhost")',
            path,
        )
        for who, profile_type, path in setters[1:]
        if profile_type is None and not pod_valid
    ]
    yield from explicit or implicit


@check("pss.capabilities-restricted")
def capabilities_restricted(workload: Workload, ctx: Context) -> Iterator[Violation]:
    version = _policy_version(workload, ctx, V1_22)
    _skip_windows_from_1_25(workload, version)
    reason = "unrestricted capabilities"
    for container in _containers(workload):
        context, path = _security_context(container)
        capabilities_path = f"{path}.capabilities"
        capabilities = _mapping(context, "capabilities", capabilities_path)
        dropped = _items(capabilities, "drop", f"{capabilities_path}.drop", str)
        added = _items(capabilities, "add", f"{capabilities_path}.add", str)
        label = _container_label(container)
        # "ALL" exactly, as upstream: the runtime does not read "all" the same way.
        if not any(name == CAPABILITY_ALL for _, name in dropped):
            yield Violation(
                f'{reason} ({label} must set securityContext.capabilities.drop=["ALL"])',
                f"{capabilities_path}.drop",
            )
        forbidden = sorted({n for _, n in added if n != CAPABILITY_NET_BIND_SERVICE})
        if forbidden:
            yield Violation(
                f"{reason} ({label} must not include {_quote_all(forbidden)} in "
                "securityContext.capabilities.add)",
                f"{capabilities_path}.add",
            )


@check("pss.run-as-user")
def run_as_user(workload: Workload, ctx: Context) -> Iterator[Violation]:
    version = _policy_version(workload, ctx, V1_23)
    if version >= V1_35 and _in_user_namespace(workload):
        return  # uid 0 inside a user namespace is not root on the node
    for who, context, path in _security_contexts(workload):
        if _typed(context, "runAsUser", f"{path}.runAsUser", int) == 0:
            yield Violation(f"runAsUser=0 ({who} must not set runAsUser=0)", f"{path}.runAsUser")


@check("pss.proc-mount-restricted")
def proc_mount_restricted(workload: Workload, ctx: Context) -> Iterator[Violation]:
    # Restricted keeps /proc masked even in a user namespace.
    _policy_version(workload, ctx, V1_35)
    yield from _unmasked_proc_mounts(workload)
