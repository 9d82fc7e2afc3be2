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
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from kubeproof.checks.registry import NotApplicable, NotEvaluated, Violation, check
from kubeproof.inventory.workloads import CONTAINER_LISTS, Container, Workload

if TYPE_CHECKING:
    from kubeproof.engine import Context
    from kubeproof.inventory import Inventory

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


def _typed(mapping: dict[str, Any], key: str, kind: type[T], parent: str = "") -> T | None:
    """The field, or None when it is missing or null. `parent` is the path of `mapping`;
    the field's own path is only spelled out to name a field of the wrong type."""
    value = mapping.get(key)
    if value is None or type(value) is kind:
        return value
    return _of_type(value, f"{parent}.{key}" if parent else key, kind)


def _mapping(mapping: dict[str, Any], key: str, parent: str = "") -> dict[str, Any]:
    return _typed(mapping, key, dict, parent) or {}


def _list_of(mapping: dict[str, Any], key: str, kind: type[T], parent: str = "") -> list[T]:
    """A list field whose items must all be of one type ([] when it is missing)."""
    items: list[Any] = _typed(mapping, key, list, parent) or []
    for index, item in enumerate(items):
        if type(item) is not kind:
            path = f"{parent}.{key}" if parent else key
            _of_type(item, f"{path}[{index}]", kind)
    return items


def _checked_containers(workload: Workload) -> list[Container]:
    """Every container upstream visits (init, regular, ephemeral), after making sure none
    was left out of the workload's list for being malformed."""
    listed = 0
    for list_name in CONTAINER_LISTS:
        items = workload.pod_spec.get(list_name)
        if items is not None:
            listed += len(_of_type(items, list_name, list))
    if listed != len(workload.containers):  # some entry was not a mapping: name it
        for list_name in CONTAINER_LISTS:
            _list_of(workload.pod_spec, list_name, dict)
    return workload.containers


def _security_context_of(spec: dict[str, Any], parent: str) -> tuple[dict[str, Any], str | None]:
    """A pod's or container's securityContext, or {} and why it could not be read."""
    context = spec.get("securityContext")
    if type(context) is dict:
        return context, None
    try:
        return _mapping(spec, "securityContext", parent), None
    except NotEvaluated as error:
        return {}, str(error)


# --- what every check reads of a workload, read once per scan ----------------------------
#
# Nineteen checks walk the same containers and securityContexts of each workload: those
# are read once per scan, into a view. A field of the wrong type is kept as the reason,
# not raised, so that each check still raises it exactly where its own reading meets it.


@dataclass(slots=True)
class _ContainerView:
    container: Container
    label: str  # `container "name"`, as upstream's messages name it
    path: str  # field path of its securityContext
    context: dict[str, Any]  # its securityContext ({} when unset or unreadable)
    error: str | None  # why its securityContext could not be read


@dataclass(slots=True)
class _PodView:
    workload: Workload  # held, so that the id() keying the view stays its own
    version: Version  # the policy version that judges it
    containers: list[_ContainerView]
    containers_error: str | None  # a container list or entry of the wrong type
    context: dict[str, Any]  # the pod's securityContext
    context_error: str | None
    # (who, securityContext, its path) for the pod, then for each container; the first
    # reason one of them could not be read, in that order.
    contexts: list[tuple[str, dict[str, Any], str]]
    contexts_error: str | None


def _read_pod(workload: Workload, ctx: Context) -> _PodView:
    containers_error = None
    try:
        containers = _checked_containers(workload)
    except NotEvaluated as error:
        containers, containers_error = [], str(error)
    pod_context, pod_error = _security_context_of(workload.pod_spec, "")
    contexts = [("pod", pod_context, "securityContext")]
    first_error = pod_error or containers_error
    views = []
    for container in containers:
        context, unreadable = _security_context_of(container.spec, container.path)
        label, path = _container_label(container), f"{container.path}.securityContext"
        views.append(_ContainerView(container, label, path, context, unreadable))
        contexts.append((label, context, path))
        first_error = first_error or unreadable
    version = ctx.pss_policy(workload.namespace).version
    return _PodView(
        workload, version, views, containers_error, pod_context, pod_error, contexts, first_error
    )


def _no_views(_: Inventory) -> dict[int, _PodView]:
    return {}


def _judged(workload: Workload, ctx: Context, minimum: Version) -> _PodView:
    """The workload's view; NotApplicable when the policy version that judges it predates
    `minimum`, the version in which the check first appeared."""
    views = ctx.derived("pss.pod-views", _no_views)
    view = views.get(id(workload))
    if view is None:
        view = views[id(workload)] = _read_pod(workload, ctx)
    if view.version < minimum:
        raise NotApplicable
    return view


def _containers(view: _PodView) -> list[_ContainerView]:
    if view.containers_error is not None:
        raise NotEvaluated(view.containers_error)
    return view.containers


def _container_contexts(view: _PodView) -> Iterator[_ContainerView]:
    """Each container, for a check that reads its securityContext first."""
    for container in _containers(view):
        if container.error is not None:
            raise NotEvaluated(container.error)
        yield container


def _pod_security_context(view: _PodView) -> dict[str, Any]:
    if view.context_error is not None:
        raise NotEvaluated(view.context_error)
    return view.context


def _security_contexts(view: _PodView) -> list[tuple[str, dict[str, Any], str]]:
    """(who, securityContext, its path) for the pod, then for each container."""
    if view.contexts_error is not None:
        raise NotEvaluated(view.contexts_error)
    return view.contexts


def _volumes(workload: Workload) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, name, volume) for each volume."""
    for index, volume in enumerate(_list_of(workload.pod_spec, "volumes", dict)):
        path = f"volumes[{index}]"
        yield path, _typed(volume, "name", str, path) or path, volume


def _annotations(workload: Workload, prefix: str) -> list[tuple[str, str]]:
    """The pod template's annotations whose key starts with `prefix`, sorted by key."""
    annotations = _mapping(workload.pod_metadata, "annotations", "metadata")
    found = []
    for key in sorted(k for k in annotations if isinstance(k, str) and k.startswith(prefix)):
        value = annotations[key]
        if value is not None:
            value = _of_type(value, f"metadata.annotations[{key}]", str)
        found.append((key, value or ""))
    return found


def _quote(text: str) -> str:
    return f'"{text}"'


def _quote_all(items: list[str]) -> str:
    return ", ".join(_quote(i) for i in items)


def _container_label(container: Container) -> str:
    return f"container {_quote(container.name)}"


# --- versions and exemptions --------------------------------------------------------------


def _is_windows(workload: Workload) -> bool:
    os = _mapping(workload.pod_spec, "os")
    return _typed(os, "name", str, "os") == "windows"


def _skip_windows_from_1_25(workload: Workload, version: Version) -> None:
    # From 1.25 the restricted checks on Linux-only fields exempt Windows pods.
    if version >= V1_25 and _is_windows(workload):
        raise NotApplicable


def _in_user_namespace(workload: Workload) -> bool:
    return _typed(workload.pod_spec, "hostUsers", bool) is False


# --- baseline -------------------------------------------------------------------------------
#
# Checks return their violations as a list, not a generator: every workload meets every
# check, and a list costs far less than a generator the engine then drains.


@check("pss.host-namespaces")
def host_namespaces(workload: Workload, ctx: Context) -> list[Violation]:
    _judged(workload, ctx, V1_0)
    return [
        Violation(f"host namespaces ({field}=true)", field)
        for field in ("hostNetwork", "hostPID", "hostIPC")
        if _typed(workload.pod_spec, field, bool)
    ]


@check("pss.privileged")
def privileged(workload: Workload, ctx: Context) -> list[Violation]:
    view = _judged(workload, ctx, V1_0)
    return [
        Violation(
            f"privileged ({container.label} must not set securityContext.privileged=true)",
            f"{container.path}.privileged",
        )
        for container in _container_contexts(view)
        if _typed(container.context, "privileged", bool, container.path)
    ]


@check("pss.capabilities-baseline")
def capabilities_baseline(workload: Workload, ctx: Context) -> list[Violation]:
    view = _judged(workload, ctx, V1_0)
    violations = []
    for container in _container_contexts(view):
        capabilities = _mapping(container.context, "capabilities", container.path)
        if not capabilities:
            continue
        capabilities_path = f"{container.path}.capabilities"
        added = _list_of(capabilities, "add", str, capabilities_path)
        # Exact, case-sensitive names: "chown" and "CAP_CHOWN" are not in the default set.
        extra = sorted({name for name in added if name not in BASELINE_CAPABILITIES})
        if extra:
            violations.append(
                Violation(
                    f"non-default capabilities ({container.label} must not include "
                    f"{_quote_all(extra)} in securityContext.capabilities.add)",
                    f"{capabilities_path}.add",
                )
            )
    return violations


@check("pss.host-path-volumes")
def host_path_volumes(workload: Workload, ctx: Context) -> list[Violation]:
    _judged(workload, ctx, V1_0)
    return [
        Violation(f"hostPath volumes (volume {_quote(name)})", f"{path}.hostPath")
        for path, name, volume in _volumes(workload)
        if _typed(volume, "hostPath", dict, path) is not None
    ]


@check("pss.host-ports")
def host_ports(workload: Workload, ctx: Context) -> list[Violation]:
    view = _judged(workload, ctx, V1_0)
    violations = []
    for container in _containers(view):
        where = container.container.path
        for index, port in enumerate(_list_of(container.container.spec, "ports", dict, where)):
            if port.get("hostPort") is None:
                continue
            path = f"{where}.ports[{index}].hostPort"
            host_port = _of_type(port["hostPort"], path, int)
            if host_port:
                violations.append(
                    Violation(f"hostPort ({container.label} uses hostPort {host_port})", path)
                )
    return violations


@check("pss.app-armor-profile")
def app_armor_profile(workload: Workload, ctx: Context) -> list[Violation]:
    # The securityContext.appArmorProfile fields were added to the 1.0 rule upstream, so
    # they are judged at every version, beside the older annotations.
    view = _judged(workload, ctx, V1_0)
    violations = []
    for who, context, path in _security_contexts(view):
        profile = _mapping(context, "appArmorProfile", path)
        if not profile:
            continue
        profile_path = f"{path}.appArmorProfile"
        profile_type = _typed(profile, "type", str, profile_path) or ""
        if profile_type not in APPARMOR_ALLOWED_TYPES:
            violations.append(
                Violation(
                    f"forbidden AppArmor profile ({who} must not set "
                    f"securityContext.appArmorProfile.type to {_quote(profile_type)})",
                    f"{profile_path}.type",
                )
            )
    for key, value in _annotations(workload, APPARMOR_ANNOTATION_PREFIX):
        if not _allowed_apparmor_annotation(value):
            # An annotation has no path inside the pod spec; the message names it.
            violations.append(Violation(f"forbidden AppArmor profile ({key}={_quote(value)})"))
    return violations


def _allowed_apparmor_annotation(value: str) -> bool:
    return value in ("", "runtime/default") or value.startswith("localhost/")


@check("pss.se-linux-options")
def se_linux_options(workload: Workload, ctx: Context) -> list[Violation]:
    view = _judged(workload, ctx, V1_0)
    allowed_types = SELINUX_TYPES_1_31 if view.version >= V1_31 else SELINUX_TYPES_1_0
    violations = []
    for who, context, path in _security_contexts(view):
        options = _mapping(context, "seLinuxOptions", path)
        if not options:
            continue  # no options: the empty type is allowed, and no user or role is set
        options_path = f"{path}.seLinuxOptions"
        prefix = f"seLinuxOptions ({who} set forbidden securityContext.seLinuxOptions:"
        selinux_type = _typed(options, "type", str, options_path) or ""
        if selinux_type not in allowed_types:
            violations.append(
                Violation(f"{prefix} type {_quote(selinux_type)})", f"{options_path}.type")
            )
        for field in ("user", "role"):
            if _typed(options, field, str, options_path):
                violations.append(
                    Violation(f"{prefix} {field} may not be set)", f"{options_path}.{field}")
                )
    return violations


def _unmasked_proc_mounts(view: _PodView) -> list[Violation]:
    violations = []
    for container in _container_contexts(view):
        proc_mount = _typed(container.context, "procMount", str, container.path)
        if proc_mount is not None and proc_mount != "Default":
            violations.append(
                Violation(
                    f"procMount ({container.label} must not set "
                    f"securityContext.procMount to {_quote(proc_mount)})",
                    f"{container.path}.procMount",
                )
            )
    return violations


@check("pss.proc-mount")
def proc_mount(workload: Workload, ctx: Context) -> list[Violation]:
    view = _judged(workload, ctx, V1_0)
    if view.version >= V1_35 and _in_user_namespace(workload):
        return []  # an unmasked /proc inside a user namespace does not expose the host's
    return _unmasked_proc_mounts(view)


@check("pss.seccomp-profile-baseline")
def seccomp_profile_baseline(workload: Workload, ctx: Context) -> list[Violation]:
    view = _judged(workload, ctx, V1_0)
    if view.version < V1_19:
        return _unconfined_seccomp_annotations(view)
    return [
        _seccomp_type_violation(who, profile_type, path)
        for who, profile_type, path in _seccomp_types(view)
        if profile_type is not None and profile_type not in SECCOMP_ALLOWED_TYPES
    ]


def _unconfined_seccomp_annotations(view: _PodView) -> list[Violation]:
    """Before 1.19 seccomp was set by alpha annotations: pod-wide and per container."""
    wanted = {SECCOMP_POD_ANNOTATION}
    wanted.update(SECCOMP_CONTAINER_ANNOTATION_PREFIX + c.container.name for c in _containers(view))
    found = dict(_annotations(view.workload, SECCOMP_POD_ANNOTATION))
    found.update(_annotations(view.workload, SECCOMP_CONTAINER_ANNOTATION_PREFIX))
    return [
        Violation(f"seccompProfile (forbidden annotation {key}={_quote(found[key])})")
        for key in sorted(wanted & found.keys())
        if not _allowed_seccomp_annotation(found[key])
    ]


def _allowed_seccomp_annotation(value: str) -> bool:
    return value in ("runtime/default", "docker/default") or value.startswith("localhost/")


def _seccomp_types(view: _PodView) -> list[tuple[str, str | None, str]]:
    """(who, seccompProfile.type or None when no profile is set, securityContext path)
    for the pod, then each container. A profile without a type has type ""."""
    found: list[tuple[str, str | None, str]] = []
    for who, context, path in _security_contexts(view):
        profile = _typed(context, "seccompProfile", dict, path)
        if profile is None:
            found.append((who, None, path))
        else:
            profile_type = _typed(profile, "type", str, f"{path}.seccompProfile") or ""
            found.append((who, profile_type, path))
    return found


def _seccomp_type_violation(who: str, profile_type: str, context_path: str) -> Violation:
    return Violation(
        f"seccompProfile ({who} must not set securityContext.seccompProfile.type to "
        f"{_quote(profile_type)})",
        f"{context_path}.seccompProfile.type",
    )


@check("pss.sysctls")
def sysctls(workload: Workload, ctx: Context) -> list[Violation]:
    view = _judged(workload, ctx, V1_0)
    safe = _safe_sysctls(view.version)
    context = _pod_security_context(view)
    violations = []
    for index, entry in enumerate(_list_of(context, "sysctls", dict, "securityContext")):
        where = f"securityContext.sysctls[{index}]"
        name = _typed(entry, "name", str, where) or ""
        if name not in safe:
            # The name only: a sysctl's value is the user's business and may be sensitive.
            violations.append(Violation(f"forbidden sysctls ({name})", f"{where}.name"))
    return violations


@cache
def _safe_sysctls(version: Version) -> frozenset[str]:
    safe: set[str] = set()
    for since, names in SAFE_SYSCTLS:
        if version >= since:
            safe.update(names)
    return frozenset(safe)


@check("pss.windows-host-process")
def windows_host_process(workload: Workload, ctx: Context) -> list[Violation]:
    view = _judged(workload, ctx, V1_0)
    violations = []
    for who, context, path in _security_contexts(view):
        options = _mapping(context, "windowsOptions", path)
        if not options:
            continue
        if _typed(options, "hostProcess", bool, f"{path}.windowsOptions"):
            violations.append(
                Violation(
                    f"hostProcess ({who} must not set "
                    "securityContext.windowsOptions.hostProcess=true)",
                    f"{path}.windowsOptions.hostProcess",
                )
            )
    return violations


@check("pss.host-probes-and-host-lifecycle")
def host_probes_and_host_lifecycle(workload: Workload, ctx: Context) -> list[Violation]:
    view = _judged(workload, ctx, V1_34)
    violations = []
    for container in _containers(view):
        spec, where = container.container.spec, container.container.path
        # Fields left out are skipped before their paths are spelled out: most containers
        # set few of them, and the paths are only needed to name a finding or a bad type.
        handlers = [
            (f"{where}.{probe}", _mapping(spec, probe, where))
            for probe in PROBES
            if spec.get(probe) is not None
        ]
        if spec.get("lifecycle") is not None:
            lifecycle = _mapping(spec, "lifecycle", where)
            lifecycle_path = f"{where}.lifecycle"
            handlers.extend(
                (f"{lifecycle_path}.{hook}", _mapping(lifecycle, hook, lifecycle_path))
                for hook in LIFECYCLE_HANDLERS
                if lifecycle.get(hook) is not None
            )
        for handler_path, handler in handlers:
            for action in HANDLER_ACTIONS:
                settings = handler.get(action)
                if settings is None or (type(settings) is dict and settings.get("host") is None):
                    continue  # most handlers: no action of this kind, or no host set
                action_path = f"{handler_path}.{action}"
                host = _typed(_mapping(handler, action, handler_path), "host", str, action_path)
                if host:
                    # Probes and hooks run from the node: a host here points the kubelet
                    # at another machine on the pod's behalf.
                    violations.append(
                        Violation(
                            f"probe or lifecycle host ({container.label} uses "
                            f"probe or lifecycle host {_quote(host)})",
                            f"{action_path}.host",
                        )
                    )
    return violations


# --- restricted -----------------------------------------------------------------------------


@check("pss.restricted-volumes")
def restricted_volumes(workload: Workload, ctx: Context) -> list[Violation]:
    _judged(workload, ctx, V1_0)
    violations = []
    for path, name, volume in _volumes(workload):
        if any(volume[k] is not None for k in volume.keys() & RESTRICTED_ALLOWED_VOLUMES):
            continue  # the common case, told apart without sorting every key
        sources = sorted(
            k for k, v in volume.items() if isinstance(k, str) and k != "name" and v is not None
        )
        # A volume with no source is defaulted to emptyDir by the API server.
        if not sources or any(s in RESTRICTED_ALLOWED_VOLUMES for s in sources):
            continue
        # Unknown keys count as restricted types: what cannot be interpreted is not allowed.
        source = sources[0]
        violations.append(
            Violation(
                f"restricted volume types (volume {_quote(name)} uses restricted volume type "
                f"{_quote(source)})",
                f"{path}.{source}",
            )
        )
    return violations


@check("pss.run-as-non-root")
def run_as_non_root(workload: Workload, ctx: Context) -> list[Violation]:
    view = _judged(workload, ctx, V1_0)
    if view.version >= V1_35 and _in_user_namespace(workload):
        return []  # root inside a user namespace maps to an unprivileged user on the node
    reason = "runAsNonRoot != true"
    pod_value = _typed(_pod_security_context(view), "runAsNonRoot", bool, "securityContext")
    explicit: list[Violation] = []
    implicit: list[Violation] = []
    if pod_value is False:
        explicit.append(
            Violation(
                f"{reason} (pod must not set securityContext.runAsNonRoot=false)",
                "securityContext.runAsNonRoot",
            )
        )
    for container in _container_contexts(view):
        value = _typed(container.context, "runAsNonRoot", bool, container.path)
        if value is False:
            explicit.append(
                Violation(
                    f"{reason} ({container.label} must not set securityContext.runAsNonRoot=false)",
                    f"{container.path}.runAsNonRoot",
                )
            )
        elif value is None and pod_value is not True:
            implicit.append(
                Violation(
                    f"{reason} (pod or {container.label} must set "
                    "securityContext.runAsNonRoot=true)",
                    f"{container.path}.runAsNonRoot",
                )
            )
    # As upstream: explicit false values first; a container that merely inherits is only
    # reported when nothing set false, since fixing the pod level may fix it too.
    return explicit or implicit


@check("pss.allow-privilege-escalation")
def allow_privilege_escalation(workload: Workload, ctx: Context) -> list[Violation]:
    view = _judged(workload, ctx, V1_8)
    _skip_windows_from_1_25(workload, view.version)
    return [
        Violation(
            f"allowPrivilegeEscalation != false ({container.label} must set "
            "securityContext.allowPrivilegeEscalation=false)",
            f"{container.path}.allowPrivilegeEscalation",
        )
        for container in _container_contexts(view)
        if _typed(container.context, "allowPrivilegeEscalation", bool, container.path) is not False
    ]


@check("pss.seccomp-profile-restricted")
def seccomp_profile_restricted(workload: Workload, ctx: Context) -> list[Violation]:
    view = _judged(workload, ctx, V1_19)
    _skip_windows_from_1_25(workload, view.version)
    setters = _seccomp_types(view)
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
            f"{path}.seccompProfile.type",
        )
        for who, profile_type, path in setters[1:]
        if profile_type is None and not pod_valid
    ]
    return explicit or implicit


@check("pss.capabilities-restricted")
def capabilities_restricted(workload: Workload, ctx: Context) -> list[Violation]:
    view = _judged(workload, ctx, V1_22)
    _skip_windows_from_1_25(workload, view.version)
    reason = "unrestricted capabilities"
    violations = []
    for container in _container_contexts(view):
        capabilities = _mapping(container.context, "capabilities", container.path)
        capabilities_path = f"{container.path}.capabilities"
        dropped = _list_of(capabilities, "drop", str, capabilities_path)
        added = _list_of(capabilities, "add", str, capabilities_path)
        # "ALL" exactly, as upstream: the runtime does not read "all" the same way.
        if CAPABILITY_ALL not in dropped:
            violations.append(
                Violation(
                    f"{reason} ({container.label} must set "
                    'securityContext.capabilities.drop=["ALL"])',
                    f"{capabilities_path}.drop",
                )
            )
        forbidden = sorted({name for name in added if name != CAPABILITY_NET_BIND_SERVICE})
        if forbidden:
            violations.append(
                Violation(
                    f"{reason} ({container.label} must not include {_quote_all(forbidden)} in "
                    "securityContext.capabilities.add)",
                    f"{capabilities_path}.add",
                )
            )
    return violations


@check("pss.run-as-user")
def run_as_user(workload: Workload, ctx: Context) -> list[Violation]:
    view = _judged(workload, ctx, V1_23)
    if view.version >= V1_35 and _in_user_namespace(workload):
        return []  # uid 0 inside a user namespace is not root on the node
    return [
        Violation(f"runAsUser=0 ({who} must not set runAsUser=0)", f"{path}.runAsUser")
        for who, context, path in _security_contexts(view)
        if _typed(context, "runAsUser", int, path) == 0
    ]


@check("pss.proc-mount-restricted")
def proc_mount_restricted(workload: Workload, ctx: Context) -> list[Violation]:
    # Restricted keeps /proc masked even in a user namespace.
    return _unmasked_proc_mounts(_judged(workload, ctx, V1_35))
