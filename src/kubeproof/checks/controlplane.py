"""kube-apiserver flags, read from its static pod where the cluster or the manifests show it.

kubeadm-style control planes run kube-apiserver as a static pod in kube-system; its command
line is its configuration. Managed control planes hide it: on a live cluster where no such
pod is visible these checks are not evaluated (never passed), and on manifests without one
they do not apply. Each check judges every visible kube-apiserver pod and reports once for
the cluster, because the API server's configuration belongs to the cluster, not to one node.

Flags are read as kube-apiserver's flag parser (pflag) reads them: `--flag=value` and
`--flag value`, except that a boolean flag written without `=` is true and does not take the
next word as its value; for list flags every occurrence adds to the list, for the others the
last occurrence wins.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kubeproof.checks.registry import NotApplicable, NotEvaluated, Violation, check
from kubeproof.inventory import Inventory, K8sObject
from kubeproof.inventory.objects import as_dict, as_list, as_str

if TYPE_CHECKING:
    from kubeproof.engine import Context

APISERVER = "kube-apiserver"
CONTROL_PLANE_NAMESPACE = "kube-system"
NOT_VISIBLE = "kube-apiserver static pod not visible (managed control plane?)"
SHELLS = frozenset({"sh", "bash", "ash", "dash"})
# Boolean flags these checks judge: pflag never reads the next word as their value.
BOOL_FLAGS = frozenset({"anonymous-auth", "profiling"})
GO_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})
GO_FALSE = frozenset({"0", "f", "F", "false", "FALSE", "False"})
# CIS 1.2.17-1.2.19: days, files and megabytes of audit log kept.
AUDIT_RETENTION = (
    ("audit-log-maxage", 30),
    ("audit-log-maxbackup", 10),
    ("audit-log-maxsize", 100),
)
REQUIRED_AUTHORIZERS = ("Node", "RBAC")
# Admission plugins on by default that must stay on (CIS 1.2.12, 1.2.13).
NEVER_DISABLED_PLUGINS = ("ServiceAccount", "NamespaceLifecycle")


@dataclass(frozen=True, slots=True)
class Flag:
    value: str
    path: str
    bare: bool = False  # written without `=`
    stray: str | None = None  # for a bare boolean: the word after it, which pflag ignores


@dataclass(frozen=True, slots=True)
class ApiServer:
    """One kube-apiserver container and the flags on its command line."""

    pod: K8sObject
    container: str
    path: str  # spec.containers[i]
    flags: dict[str, list[Flag]]

    def __str__(self) -> str:
        return f"Pod {self.pod.namespace}/{self.pod.name} container {self.container}"

    def last(self, name: str) -> Flag | None:
        occurrences = self.flags.get(name)
        return occurrences[-1] if occurrences else None

    def text(self, name: str) -> str | None:
        """The flag's value, or None when it is absent or empty (both leave the default)."""
        flag = self.last(name)
        return flag.value if flag is not None and flag.value else None

    def items(self, name: str) -> list[str]:
        """A list flag's entries over all its occurrences: --authorization-mode and the
        admission plugin flags are pflag string slices, to which each occurrence adds."""
        return [
            item.strip()
            for flag in self.flags.get(name, [])
            for item in flag.value.split(",")
            if item.strip()
        ]

    def where(self, name: str) -> str:
        flag = self.last(name)
        return flag.path if flag is not None else self.path


@dataclass(slots=True)
class ApiServers:
    found: list[ApiServer] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # why a labelled pod was not read


# --- finding the API server -------------------------------------------------------------


def command_line(container: dict[str, object], index: int) -> list[tuple[str, str]]:
    """The container's words (command, then args) with the field path each came from. A
    `sh -c SCRIPT` is split as the shell would split a simple command line."""
    words: list[tuple[str, str]] = []
    for part in ("command", "args"):
        for position, item in enumerate(as_list(container.get(part))):
            text = as_str(item)
            if text is not None:
                words.append((text, f"spec.containers[{index}].{part}[{position}]"))
    if words and _basename(words[0][0]) in SHELLS:
        script = next((i + 1 for i, (w, _) in enumerate(words) if w == "-c"), None)
        if script is not None and script < len(words):
            text, path = words[script]
            try:
                return [(word, path) for word in shlex.split(text)]
            except ValueError:  # unbalanced quotes: the shell would not run it either
                return []
    return words


def _basename(word: str) -> str:
    return word.rsplit("/", 1)[-1]


def _image_name(image: str) -> str:
    name = _basename(image.split("@", 1)[0])
    return name.split(":", 1)[0]


def apiserver_words(container: dict[str, object], index: int) -> list[tuple[str, str]] | None:
    """The words after `kube-apiserver` on the container's command line; all of them when
    the image's entrypoint runs it; None when the container does not run kube-apiserver."""
    words = command_line(container, index)
    for position, (word, _) in enumerate(words):
        if _basename(word) == APISERVER:
            return words[position + 1 :]
    name = as_str(container.get("name"))
    image = as_str(container.get("image")) or ""
    if name == APISERVER or _image_name(image).startswith(APISERVER):
        return words
    return None


def parse_flags(words: list[tuple[str, str]]) -> dict[str, list[Flag]]:
    """Long flags as pflag reads them; single-dash flags (-v=2) are not ours to judge."""
    flags: dict[str, list[Flag]] = {}
    position = 0
    while position < len(words):
        word, path = words[position]
        position += 1
        if word == "--":
            break
        if not word.startswith("--") or len(word) == 2:
            continue
        name, equals, value = word[2:].partition("=")
        following = words[position] if position < len(words) else None
        if equals:
            flag = Flag(value, path)
        elif name in BOOL_FLAGS:
            stray = following[0] if following and not following[0].startswith("-") else None
            flag = Flag("true", path, bare=True, stray=stray)
        elif following is not None and not following[0].startswith("--"):
            flag = Flag(following[0], following[1], bare=True)
            position += 1
        else:
            flag = Flag("", path, bare=True)
        flags.setdefault(name, []).append(flag)
    return flags


def _is_apiserver_pod(pod: K8sObject) -> bool:
    if pod.namespace != CONTROL_PLANE_NAMESPACE and not pod.namespace_defaulted:
        return False
    if pod.labels.get("component") == APISERVER:
        return True
    containers = as_list(pod.spec.get("containers"))
    return any(
        _basename(word) == APISERVER
        for index, container in enumerate(containers)
        for word, _ in command_line(as_dict(container), index)
    )


def find_apiservers(inventory: Inventory) -> ApiServers:
    result = ApiServers()
    for pod in inventory.of_kind("Pod"):
        if not _is_apiserver_pod(pod):
            continue
        server = _apiserver_in(pod)
        if server is None:
            result.unreadable.append(
                f"Pod {pod.namespace}/{pod.name} is labelled component={APISERVER} "
                "but no container in it runs kube-apiserver"
            )
        else:
            result.found.append(server)
    return result


def _apiserver_in(pod: K8sObject) -> ApiServer | None:
    for index, container in enumerate(as_list(pod.spec.get("containers"))):
        container = as_dict(container)
        words = apiserver_words(container, index)
        if words is not None:
            name = as_str(container.get("name")) or f"#{index}"
            return ApiServer(pod, name, f"spec.containers[{index}]", parse_flags(words))
    return None


def _apiservers(ctx: Context) -> list[ApiServer]:
    """The visible API servers; not evaluated on a cluster that shows none."""
    servers = ctx.derived("controlplane.apiservers", find_apiservers)
    if servers.found or servers.unreadable:
        if not servers.found:
            raise NotEvaluated("; ".join(servers.unreadable))
        return servers.found
    if ctx.inventory.coverage.complete_by_default:
        raise NotApplicable  # manifests without the static pod say nothing about the server
    raise NotEvaluated(NOT_VISIBLE)


Judge = Callable[[ApiServer], list[Violation]]


def judge_each(ctx: Context, judge: Judge) -> list[Violation]:
    """Every visible API server judged; a server that cannot be judged makes the result not
    evaluated unless another one already fails."""
    servers = _apiservers(ctx)
    violations: list[Violation] = []
    reasons = list(ctx.derived("controlplane.apiservers", find_apiservers).unreadable)
    judged = 0
    for server in servers:
        try:
            violations += judge(server)
            judged += 1
        except NotEvaluated as signal:
            reasons.append(f"{server}: {signal}")
        except NotApplicable:
            continue
    if violations:
        return violations
    if reasons:
        raise NotEvaluated("; ".join(reasons))
    if not judged:
        raise NotApplicable
    return []


def go_bool(text: str) -> bool | None:
    if text in GO_TRUE:
        return True
    if text in GO_FALSE:
        return False
    return None


def _bool_violation(server: ApiServer, name: str, default: str) -> Violation | None:
    """A violation unless boolean flag `name` is explicitly false."""
    flag = server.last(name)
    if flag is None:
        return Violation(
            f"{server}: --{name} is not set, and kube-apiserver defaults to {default}",
            server.path,
        )
    if flag.stray is not None:
        return Violation(
            f"{server}: --{name} is written without '=', which makes it true; the word after "
            f"it is not its value (write --{name}=false)",
            flag.path,
        )
    value = go_bool(flag.value)
    if value is None:
        return Violation(f"{server}: --{name} is not a boolean", flag.path)
    if value:
        return Violation(f"{server}: --{name} is true", flag.path)
    return None


# --- the checks -------------------------------------------------------------------------


@check("controlplane.apiserver-anonymous-auth-disabled")
def apiserver_anonymous_auth_disabled(ctx: Context) -> list[Violation]:
    return judge_each(ctx, _anonymous_auth)


def _anonymous_auth(server: ApiServer) -> list[Violation]:
    if server.last("anonymous-auth") is None and server.text("authentication-config"):
        raise NotEvaluated(
            "anonymous authentication is set in the --authentication-config file, which the "
            "scan cannot read"
        )
    violation = _bool_violation(server, "anonymous-auth", "true")
    return [violation] if violation else []


@check("controlplane.apiserver-authorization-mode")
def apiserver_authorization_mode(ctx: Context) -> list[Violation]:
    return judge_each(ctx, _authorization_mode)


def _authorization_mode(server: ApiServer) -> list[Violation]:
    modes = server.items("authorization-mode")
    if not modes and server.text("authorization-config"):
        raise NotEvaluated(
            "authorizers are set in the --authorization-config file, which the scan cannot read"
        )
    where = server.where("authorization-mode")
    if not modes:
        return [
            Violation(
                f"{server}: --authorization-mode is not set, and kube-apiserver defaults to "
                "AlwaysAllow: every authenticated request is allowed",
                where,
            )
        ]
    violations = []
    if "AlwaysAllow" in modes:
        violations.append(Violation(f"{server}: --authorization-mode includes AlwaysAllow", where))
    for mode in REQUIRED_AUTHORIZERS:
        if mode not in modes:
            violations.append(
                Violation(f"{server}: --authorization-mode does not include {mode}", where)
            )
    return violations


@check("controlplane.apiserver-audit-logging")
def apiserver_audit_logging(ctx: Context) -> list[Violation]:
    return judge_each(ctx, _audit_logging)


def _audit_logging(server: ApiServer) -> list[Violation]:
    violations = []
    if not server.text("audit-policy-file"):
        violations.append(
            Violation(
                f"{server}: --audit-policy-file is not set, so no audit events are recorded",
                server.where("audit-policy-file"),
            )
        )
    if not (server.text("audit-log-path") or server.text("audit-webhook-config-file")):
        violations.append(
            Violation(
                f"{server}: no audit backend: neither --audit-log-path nor "
                "--audit-webhook-config-file is set",
                server.where("audit-log-path"),
            )
        )
    return violations


@check("controlplane.apiserver-audit-log-retention")
def apiserver_audit_log_retention(ctx: Context) -> list[Violation]:
    return judge_each(ctx, _audit_log_retention)


def _audit_log_retention(server: ApiServer) -> list[Violation]:
    path = server.text("audit-log-path")
    if path is None or path == "-":
        raise NotApplicable  # no log file (none at all, or standard output): nothing rotates
    violations = []
    for name, minimum in AUDIT_RETENTION:
        text = server.text(name)
        if text is None:
            violations.append(
                Violation(f"{server}: --{name} is not set (CIS asks for {minimum} or more)",
                          server.where(name))
            )  # fmt: skip
        elif not text.isdigit():
            violations.append(
                Violation(f"{server}: --{name} is not a whole number", server.where(name))
            )
        elif int(text) < minimum:
            violations.append(
                Violation(f"{server}: --{name} is {int(text)}, below {minimum}", server.where(name))
            )
    return violations


@check("controlplane.apiserver-admission-plugins")
def apiserver_admission_plugins(ctx: Context) -> list[Violation]:
    return judge_each(ctx, _admission_plugins)


def _admission_plugins(server: ApiServer) -> list[Violation]:
    enabled = server.items("enable-admission-plugins") + server.items("admission-control")
    disabled = server.items("disable-admission-plugins")
    enable_at = server.where("enable-admission-plugins")
    violations = []
    if "AlwaysAdmit" in enabled:
        violations.append(
            Violation(f"{server}: admission plugin AlwaysAdmit is enabled", enable_at)
        )
    if "NodeRestriction" not in enabled:
        violations.append(
            Violation(
                f"{server}: admission plugin NodeRestriction is not in --enable-admission-plugins",
                enable_at,
            )
        )
    for plugin in NEVER_DISABLED_PLUGINS:
        if plugin in disabled:
            violations.append(
                Violation(
                    f"{server}: --disable-admission-plugins turns off {plugin}",
                    server.where("disable-admission-plugins"),
                )
            )
    return violations


@check("controlplane.apiserver-profiling-disabled")
def apiserver_profiling_disabled(ctx: Context) -> list[Violation]:
    return judge_each(ctx, _profiling)


def _profiling(server: ApiServer) -> list[Violation]:
    violation = _bool_violation(server, "profiling", "true")
    return [violation] if violation else []


@check("controlplane.apiserver-kubelet-certificate-authority")
def apiserver_kubelet_certificate_authority(ctx: Context) -> list[Violation]:
    return judge_each(ctx, _kubelet_certificate_authority)


def _kubelet_certificate_authority(server: ApiServer) -> list[Violation]:
    if server.text("kubelet-certificate-authority"):
        return []
    return [
        Violation(
            f"{server}: --kubelet-certificate-authority is not set, so the API server does not "
            "verify kubelets' serving certificates",
            server.where("kubelet-certificate-authority"),
        )
    ]
