"""Workload hardening: how each container and pod is configured beyond what Pod Security
Standards require (those are the pss.* checks; nothing here repeats one of them).

Ephemeral containers are debugging sessions added to a running pod, not part of the
workload's definition, so the container checks here do not judge them (the PSS checks do).

The container checks run once per container of every workload, so they return their
violations as a list (an empty one costs far less than a generator the engine drains) and
read what repeats across containers once per scan.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubeproof.checks.registry import NotApplicable, NotEvaluated, Violation, check
from kubeproof.inventory import Container, Inventory, K8sObject, Workload
from kubeproof.inventory.objects import as_dict, as_list, as_str

if TYPE_CHECKING:
    from kubeproof.engine import Context

# --- shared helpers -----------------------------------------------------------------------

RUN_TO_COMPLETION_KINDS = frozenset({"Job", "CronJob"})
PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
DEFAULT_SERVICE_ACCOUNT = "default"


def _judged_container(container: Container) -> None:
    if container.list_name == "ephemeralContainers":
        raise NotApplicable


def _is_windows(workload: Workload) -> bool:
    """Windows pods have no Linux user ids, capabilities or read-only root filesystems."""
    spec = workload.pod_spec
    os, node_selector = spec.get("os"), spec.get("nodeSelector")
    if os is None and node_selector is None:
        return False  # the common case, asked once per container by several checks
    os_name = as_str(as_dict(os).get("name"))
    node_os = as_str(as_dict(node_selector).get("kubernetes.io/os"))
    return "windows" in (os_name, node_os)


def _linux_container(container: Container, workload: Workload) -> None:
    _judged_container(container)
    if _is_windows(workload):
        raise NotApplicable


_CONTAINER_KINDS = {
    "initContainers": "init container",
    "ephemeralContainers": "ephemeral container",
}


def _where(container: Container) -> str:
    return f"{_CONTAINER_KINDS.get(container.list_name, 'container')} {container.name}"


def _sidecar(container: Container) -> bool:
    """A restartable init container runs for the pod's whole life, like a container."""
    return container.list_name == "initContainers" and container.spec.get("restartPolicy") == (
        "Always"
    )


def _runs_to_completion(workload: Workload) -> bool:
    if workload.obj.kind in RUN_TO_COMPLETION_KINDS:
        return True
    return workload.pod_spec.get("restartPolicy") in ("Never", "OnFailure")


# --- read-only root filesystem ------------------------------------------------------------


@check("workload.read-only-root-filesystem")
def read_only_root_filesystem(
    container: Container, workload: Workload, ctx: Context
) -> list[Violation]:
    _linux_container(container, workload)
    if container.security_context.get("readOnlyRootFilesystem") is True:
        return []
    return [
        Violation(
            f"{_where(container)} has a writable root filesystem "
            "(securityContext.readOnlyRootFilesystem is not true)",
            "securityContext.readOnlyRootFilesystem",
        )
    ]


# --- resources ----------------------------------------------------------------------------

_ZERO_QUANTITY = re.compile(r"[+]?0*(?:\.0*)?(?:[eE][+-]?\d+)?[A-Za-z]{0,2}")


def _quantity_set(value: Any) -> bool:
    """A resource quantity that is present and not zero."""
    if value is None or isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return value > 0
    text = (as_str(value) or "").strip()
    if text[:1] in _NON_ZERO_DIGITS:
        return True  # the common "250m", "1Gi": a leading non-zero digit is never zero
    return bool(text) and not _ZERO_QUANTITY.fullmatch(text)


_NON_ZERO_DIGITS = frozenset("123456789")


@dataclass(frozen=True, slots=True)
class _LimitRangeDefaults:
    """What LimitRanges in a namespace fill in for containers that leave resources out."""

    requests: frozenset[str]
    limits: frozenset[str]


def _limit_range_defaults(namespace: str, ctx: Context) -> _LimitRangeDefaults:
    """Resources a LimitRange defaults, as its API defaulting does: a default limit comes
    from `default` or `max`; a default request from `defaultRequest`, `default`, `max`
    or `min`."""
    requests: set[str] = set()
    limits: set[str] = set()
    for limit_range in ctx.inventory.in_namespace("LimitRange", namespace):
        for item in as_list(limit_range.spec.get("limits")):
            item = as_dict(item)
            if item.get("type") != "Container":
                continue
            limit_keys = _set_keys(item, "default", "max")
            limits |= limit_keys
            requests |= limit_keys | _set_keys(item, "defaultRequest", "min")
    return _LimitRangeDefaults(frozenset(requests), frozenset(limits))


def _set_keys(item: dict[str, Any], *fields: str) -> set[str]:
    return {
        key
        for field in fields
        for key, value in as_dict(item.get(field)).items()
        if isinstance(key, str) and _quantity_set(value)
    }


def _namespace_defaults(namespace: str, ctx: Context) -> _LimitRangeDefaults:
    """`_limit_range_defaults`, worked out once per namespace and scan."""
    known: dict[str, _LimitRangeDefaults] = ctx.derived("workload.limit-range-defaults", _none)
    defaults = known.get(namespace)
    if defaults is None:
        defaults = known[namespace] = _limit_range_defaults(namespace, ctx)
    return defaults


def _none(_: Inventory) -> dict[Any, Any]:
    return {}


def _missing_resource(
    container: Container, workload: Workload, ctx: Context, resource: str, *, request: bool
) -> list[Violation]:
    """A violation when neither the container nor a LimitRange sets the resource."""
    _judged_container(container)
    resources = as_dict(container.spec.get("resources"))
    limits = as_dict(resources.get("limits"))
    if _quantity_set(limits.get(resource)):
        return []  # a limit without a request makes the request equal to it
    if request and _quantity_set(as_dict(resources.get("requests")).get(resource)):
        return []
    defaults = _namespace_defaults(workload.namespace, ctx)
    if resource in (defaults.requests if request else defaults.limits):
        return []
    gap = ctx.inventory.coverage.gap(["LimitRange"])
    if gap is not None:
        raise NotEvaluated(
            f"a LimitRange could set a default {resource} "
            f"{'request' if request else 'limit'}, but {gap}"
        )
    field = f"resources.{'requests' if request else 'limits'}.{resource}"
    return [
        Violation(
            f"{_where(container)} sets no {resource} {'request' if request else 'limit'} "
            f"({field}) and no LimitRange in namespace {workload.namespace} sets a default",
            field,
        )
    ]


@check("workload.cpu-request")
def cpu_request(container: Container, workload: Workload, ctx: Context) -> list[Violation]:
    return _missing_resource(container, workload, ctx, "cpu", request=True)


@check("workload.memory-request")
def memory_request(container: Container, workload: Workload, ctx: Context) -> list[Violation]:
    return _missing_resource(container, workload, ctx, "memory", request=True)


@check("workload.memory-limit")
def memory_limit(container: Container, workload: Workload, ctx: Context) -> list[Violation]:
    return _missing_resource(container, workload, ctx, "memory", request=False)


# --- probes -------------------------------------------------------------------------------


def _probe_violation(container: Container, workload: Workload, field: str) -> list[Violation]:
    _judged_container(container)
    if container.list_name == "initContainers" or _runs_to_completion(workload):
        raise NotApplicable  # run-to-completion containers have nothing to keep alive
    probe = container.spec.get(field)
    if probe is None:
        return [Violation(f"{_where(container)} has no {field}", field)]
    if any(isinstance(as_dict(probe).get(h), dict) for h in PROBE_HANDLERS):
        return []
    return [
        Violation(
            f"{_where(container)} has a {field} without a handler ({', '.join(PROBE_HANDLERS)})",
            field,
        )
    ]


@check("workload.liveness-probe")
def liveness_probe(container: Container, workload: Workload, ctx: Context) -> list[Violation]:
    return _probe_violation(container, workload, "livenessProbe")


@check("workload.readiness-probe")
def readiness_probe(container: Container, workload: Workload, ctx: Context) -> list[Violation]:
    return _probe_violation(container, workload, "readinessProbe")


# --- images -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImageReference:
    repository: str
    tag: str | None
    digest: str | None

    @property
    def mutable(self) -> bool:
        """Whether what the reference points to can change without the manifest changing."""
        return self.digest is None


_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[+._-][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")


def parse_image(reference: str) -> ImageReference:
    """`registry:5000/team/app:1.2@sha256:...` -> repository, tag and digest. A colon
    before the last slash belongs to a registry port, not a tag."""
    name, _, digest = reference.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = name[colon + 1 :] if colon > slash else None
    repository = name[:colon] if colon > slash else name
    return ImageReference(
        repository, tag or None, digest if digest and _DIGEST.fullmatch(digest) else None
    )


def _image_of(container: Container, ctx: Context) -> ImageReference:
    """The container's image, parsed once per scan for all the image checks (the same
    image runs in many containers)."""
    image = container.image.strip()
    if not image:
        raise NotEvaluated(f"{_where(container)} names no image")
    parsed: dict[str, ImageReference] = ctx.derived("workload.parsed-images", _none)
    reference = parsed.get(image)
    if reference is None:
        reference = parsed[image] = parse_image(image)
    return reference


@check("workload.image-latest-tag")
def image_latest_tag(container: Container, workload: Workload, ctx: Context) -> list[Violation]:
    _judged_container(container)
    image = _image_of(container, ctx)
    if not image.mutable:
        return []
    if image.tag is None:
        return [Violation(f"{_where(container)} image has no tag, so it means :latest", "image")]
    if image.tag == "latest":
        return [Violation(f"{_where(container)} image uses the :latest tag", "image")]
    return []


@check("workload.image-digest")
def image_digest(container: Container, workload: Workload, ctx: Context) -> list[Violation]:
    _judged_container(container)
    if not _image_of(container, ctx).mutable:
        return []
    return [Violation(f"{_where(container)} image is not pinned by digest (@sha256:...)", "image")]


def _effective_pull_policy(container: Container, image: ImageReference) -> str:
    """imagePullPolicy as the API server defaults it when it is left out."""
    policy = as_str(container.spec.get("imagePullPolicy"))
    if policy:
        return policy
    if image.digest is None and image.tag in (None, "latest"):
        return "Always"
    return "IfNotPresent"


@check("workload.image-pull-policy")
def image_pull_policy(container: Container, workload: Workload, ctx: Context) -> list[Violation]:
    _judged_container(container)
    image = _image_of(container, ctx)
    if not image.mutable:
        return []  # a digest names the same bytes on every node, whatever the policy
    policy = _effective_pull_policy(container, image)
    if policy == "Always":
        return []
    stated = "" if container.spec.get("imagePullPolicy") else " by default"
    return [
        Violation(
            f"{_where(container)} image is referenced by a mutable tag and pulled "
            f"{policy}{stated}: nodes can run different images for the same tag, and a "
            "cached image is used without checking the pod may pull it",
            "imagePullPolicy",
        )
    ]


# --- namespace ----------------------------------------------------------------------------


@check("workload.default-namespace")
def default_namespace(workload: Workload, ctx: Context) -> Iterator[Violation]:
    obj = workload.obj
    if obj.namespace_defaulted:
        yield Violation(
            f"{obj.kind} {obj.name} has no metadata.namespace: it is created in whatever "
            "namespace the applying tool targets, which is the default namespace unless "
            "one is given"
        )
    elif obj.namespace == "default":
        yield Violation(f"{obj.kind} {obj.name} runs in the default namespace")


# --- service accounts ---------------------------------------------------------------------


def service_account_name(workload: Workload) -> str:
    spec = workload.pod_spec
    return (
        as_str(spec.get("serviceAccountName"))
        or as_str(spec.get("serviceAccount"))
        or DEFAULT_SERVICE_ACCOUNT
    )


def _service_account(workload: Workload, ctx: Context) -> K8sObject | None:
    accounts = ctx.derived("workload.service-accounts", _service_accounts)
    return accounts.get((workload.namespace, service_account_name(workload)))


def _service_accounts(inventory: Inventory) -> dict[tuple[str | None, str], K8sObject]:
    """ServiceAccounts by namespace and name (the first, should a name repeat)."""
    accounts: dict[tuple[str | None, str], K8sObject] = {}
    for account in inventory.of_kind("ServiceAccount"):
        accounts.setdefault((account.namespace, account.name), account)
    return accounts


@dataclass(frozen=True, slots=True)
class TokenMount:
    mounted: bool
    why: str  # which object decides, for messages


def token_mount(workload: Workload, ctx: Context) -> TokenMount:
    """Whether the API token is mounted into the pod: the pod's own setting wins, then
    the service account's, then Kubernetes mounts it. Raises NotEvaluated when that
    depends on a ServiceAccount that was not seen."""
    pod_setting = workload.pod_spec.get("automountServiceAccountToken")
    if isinstance(pod_setting, bool):
        return TokenMount(
            pod_setting, f"the pod sets automountServiceAccountToken {str(pod_setting).lower()}"
        )
    name = service_account_name(workload)
    account = _service_account(workload, ctx)
    if account is None:
        gap = ctx.inventory.coverage.gap(["ServiceAccount"])
        raise NotEvaluated(
            f"the pod does not set automountServiceAccountToken and ServiceAccount "
            f"{workload.namespace}/{name}, whose setting then decides, "
            + (f"could not be read ({gap})" if gap else "is not in the input")
        )
    account_setting = account.raw.get("automountServiceAccountToken")
    if account_setting is False:
        return TokenMount(False, f"ServiceAccount {name} sets automountServiceAccountToken false")
    return TokenMount(
        True, f"neither the pod nor ServiceAccount {name} sets automountServiceAccountToken false"
    )


@check("workload.service-account-token-automount")
def service_account_token_automount(workload: Workload, ctx: Context) -> Iterator[Violation]:
    mount = token_mount(workload, ctx)
    if mount.mounted:
        yield Violation(
            f"the service account token is mounted into the pod: {mount.why}",
            "automountServiceAccountToken",
        )


@check("workload.default-service-account")
def default_service_account(workload: Workload, ctx: Context) -> Iterator[Violation]:
    if service_account_name(workload) != DEFAULT_SERVICE_ACCOUNT:
        return
    # Running as the default account without its token uses no shared credential.
    mount = token_mount(workload, ctx)
    if mount.mounted:
        yield Violation(
            "the pod runs as the namespace's default service account with its API token "
            f"mounted ({mount.why})",
            "serviceAccountName",
        )


# --- capabilities -------------------------------------------------------------------------


def _capabilities(container: Container) -> dict[str, Any]:
    return as_dict(container.security_context.get("capabilities"))


def _names(capabilities: dict[str, Any], field: str) -> list[str]:
    """Capability names as the runtime reads them: upper case, with or without CAP_."""
    names = as_list(capabilities.get(field))
    return [name.upper().removeprefix("CAP_") for name in names if isinstance(name, str)]


_NET_RAW_OR_ALL = frozenset({"NET_RAW", "ALL"})


@check("workload.net-raw-capability")
def net_raw_capability(container: Container, workload: Workload, ctx: Context) -> list[Violation]:
    _linux_container(container, workload)
    capabilities = _capabilities(container)
    if not _NET_RAW_OR_ALL.isdisjoint(_names(capabilities, "add")):
        return [
            Violation(
                f"{_where(container)} adds NET_RAW (securityContext.capabilities.add)",
                "securityContext.capabilities.add",
            )
        ]
    if not _NET_RAW_OR_ALL.isdisjoint(_names(capabilities, "drop")):
        return []
    return [
        Violation(
            f"{_where(container)} does not drop NET_RAW "
            "(securityContext.capabilities.drop has neither NET_RAW nor ALL)",
            "securityContext.capabilities.drop",
        )
    ]


@check("workload.added-capabilities")
def added_capabilities(container: Container, workload: Workload, ctx: Context) -> list[Violation]:
    _linux_container(container, workload)
    added = sorted(set(_names(_capabilities(container), "add")))
    if not added:
        return []
    return [
        Violation(
            f"{_where(container)} adds capabilities {', '.join(added)}",
            "securityContext.capabilities.add",
        )
    ]


# --- user ---------------------------------------------------------------------------------


def _user_id(context: dict[str, Any]) -> int | None:
    user = context.get("runAsUser")
    return user if isinstance(user, int) and not isinstance(user, bool) else None


def _run_as_non_root(context: dict[str, Any]) -> bool | None:
    value = context.get("runAsNonRoot")
    return value if isinstance(value, bool) else None


@check("workload.runs-as-root")
def runs_as_root(container: Container, workload: Workload, ctx: Context) -> list[Violation]:
    _linux_container(container, workload)
    # The container's own settings beat the pod's; the pod's are read only when needed.
    own = container.security_context
    user, user_origin = _user_id(own), "container"
    if user is None:
        user, user_origin = _user_id(workload.security_context), "pod"
    if user == 0:
        return [
            Violation(
                f"{_where(container)} runs as root (runAsUser 0, set on the {user_origin})",
                "securityContext.runAsUser",
            )
        ]
    if user is not None:
        return []
    non_root = _run_as_non_root(own)
    if non_root is None:
        non_root = _run_as_non_root(workload.security_context)
    if non_root is True:
        return []
    return [
        Violation(
            f"{_where(container)} may run as root: neither runAsNonRoot true nor a "
            "non-zero runAsUser is set, so the image decides",
            "securityContext.runAsNonRoot",
        )
    ]


@check("workload.security-context")
def security_context(container: Container, workload: Workload, ctx: Context) -> list[Violation]:
    _judged_container(container)
    if container.security_context or workload.security_context:
        return []
    return [
        Violation(
            f"{_where(container)} has no securityContext, and neither does the pod",
            "securityContext",
        )
    ]


# --- host paths ---------------------------------------------------------------------------


@check("workload.writable-host-path")
def writable_host_path(workload: Workload, ctx: Context) -> Iterator[Violation]:
    host_paths: dict[str, str] = {}
    for volume in as_list(workload.pod_spec.get("volumes")):
        volume = as_dict(volume)
        name = as_str(volume.get("name"))
        if name and "hostPath" in volume:
            host_paths[name] = as_str(as_dict(volume.get("hostPath")).get("path")) or "?"
    if not host_paths:
        return
    for container in workload.containers:
        for index, mount in enumerate(as_list(container.spec.get("volumeMounts"))):
            mount = as_dict(mount)
            volume = as_str(mount.get("name"))
            if volume in host_paths and mount.get("readOnly") is not True:
                yield Violation(
                    f"{_where(container)} mounts hostPath volume {volume} "
                    f"({host_paths[volume]}) writable (readOnly is not true)",
                    f"{container.path}.volumeMounts[{index}].readOnly",
                )
