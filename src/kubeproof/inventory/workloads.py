"""Pod specs found inside workload objects, and the containers inside pod specs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kubeproof.inventory.objects import K8sObject, as_dict, as_list, as_str
from kubeproof.model import Subject

# Where each workload kind keeps its pod template, as a path of keys from the object root.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "PodTemplate": ("template",),
}

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
# The field path of the pod spec inside each kind, e.g. "spec.template.spec".
_SPEC_PATHS = {kind: ".".join((*keys, "spec")) for kind, keys in POD_SPEC_PATHS.items()}


@dataclass(slots=True)
class Container:
    name: str
    spec: dict[str, Any]
    list_name: str  # initContainers | containers | ephemeralContainers
    index: int
    # Read once, as a dozen checks read them for every container: its field path in the
    # pod spec (e.g. "containers[0]"), its image ("" when none) and securityContext.
    path: str = field(init=False)
    image: str = field(init=False)
    security_context: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.path = f"{self.list_name}[{self.index}]"
        self.image = as_str(self.spec.get("image")) or ""
        self.security_context = as_dict(self.spec.get("securityContext"))


@dataclass(slots=True)
class Workload:
    """A pod template with its owning object: the unit most checks judge."""

    obj: K8sObject  # the top owner (a Deployment, a CronJob, a bare Pod ...)
    pod_metadata: dict[str, Any]
    pod_spec: dict[str, Any]
    spec_path: str  # field path of the pod spec inside obj, e.g. "spec.template.spec"
    containers: list[Container]
    pod_count: int | None = None  # running pods it owns, when read from a cluster
    extra: dict[str, Any] = field(default_factory=dict)
    # Read once: many checks match the pod labels against selectors, and read the pod's
    # securityContext for each container.
    pod_labels: dict[str, str] = field(init=False)
    security_context: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        labels = as_dict(self.pod_metadata.get("labels"))
        self.pod_labels = {k: v for k, v in labels.items() if isinstance(v, str)}
        self.security_context = as_dict(self.pod_spec.get("securityContext"))

    @property
    def subject(self) -> Subject:
        return self.obj.subject

    @property
    def namespace(self) -> str:
        return self.obj.namespace or "default"

    @property
    def pod_annotations(self) -> dict[str, str]:
        annotations = as_dict(self.pod_metadata.get("annotations"))
        return {k: v for k, v in annotations.items() if isinstance(v, str)}

    def all_containers(self) -> Iterator[Container]:
        return iter(self.containers)

    def field_path(self, relative: str | None) -> str:
        """The full field path of a pod-spec-relative path, for messages and SARIF."""
        if not relative:
            return self.spec_path
        return f"{self.spec_path}.{relative}" if self.spec_path else relative


def containers_of(pod_spec: dict[str, Any]) -> list[Container]:
    found: list[Container] = []
    for list_name in CONTAINER_LISTS:
        for index, spec in enumerate(as_list(pod_spec.get(list_name))):
            if isinstance(spec, dict):
                name = as_str(spec.get("name")) or f"{list_name}[{index}]"
                found.append(Container(name, spec, list_name, index))
    return found


def workload_of(obj: K8sObject) -> Workload | None:
    """The pod template an object carries, or None for objects that run no pods."""
    keys = POD_SPEC_PATHS.get(obj.kind)
    if keys is None:
        return None
    template: Any = obj.raw
    for key in keys:
        template = as_dict(template).get(key)
    template = as_dict(template)
    pod_spec = template.get("spec")
    if not isinstance(pod_spec, dict):
        return None
    return Workload(
        obj=obj,
        pod_metadata=as_dict(template.get("metadata")),
        pod_spec=pod_spec,
        spec_path=_SPEC_PATHS[obj.kind],
        containers=containers_of(pod_spec),
    )
