"""Which images run where. From a cluster: the digest each container of a running pod runs
(its status `imageID`), with the workload (top owner) and container that run it; from
manifests: the image each workload's containers name (tag or digest). Images are keyed so
that each is pulled once however many containers run it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kubeproof.inventory import Inventory
from kubeproof.inventory.objects import as_dict, as_list, as_str
from kubeproof.inventory.owners import top_owner  # the inventory's own folding rule
from kubeproof.inventory.workloads import CONTAINER_LISTS, POD_SPEC_PATHS
from kubeproof.model import Location, Subject

# Where a pod's status lists each kind of container.
STATUS_LISTS = {
    "initContainers": "initContainerStatuses",
    "containers": "containerStatuses",
    "ephemeralContainers": "ephemeralContainerStatuses",
}
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# docker-pullable://, docker://, containerd://, cri-o:// ... in front of the reference.
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")


class ImageIdError(ValueError):
    """A status imageID that does not name a pullable image (the message says why)."""


def pinned_reference(image_id: str) -> tuple[str, str]:
    """(REPOSITORY@sha256:..., sha256:...) from a pod status imageID, whatever runtime wrote
    it: `docker-pullable://repo@sha256:...` (dockershim, cri-dockerd) or `repo@sha256:...`
    (containerd, CRI-O). A bare `sha256:...` (or `docker://sha256:...`) is the local image
    id, not a registry digest: the image cannot be pulled by it."""
    text = _SCHEME.sub("", image_id.strip(), count=1)
    repository, at, digest = text.rpartition("@")
    if not at:
        if _DIGEST.match(text):
            raise ImageIdError(
                f"imageID {image_id!r} is a local image id, not a registry digest "
                "(the image was not pulled from a registry)"
            )
        raise ImageIdError(f"imageID {image_id!r} names no digest (REPOSITORY@sha256:...)")
    if not _DIGEST.match(digest):
        raise ImageIdError(f"imageID {image_id!r}: {digest!r} is not a sha256 digest")
    if not repository or any(c.isspace() for c in repository):
        raise ImageIdError(f"imageID {image_id!r} names no repository")
    return f"{repository}@{digest}", digest


@dataclass(frozen=True, slots=True)
class ContainerUse:
    """One container that runs an image, named as results name it."""

    subject: Subject  # the top owner, with the container name
    location: Location | None = None
    path: str | None = None  # field path of the image in the owner (manifests)


@dataclass
class RunningImage:
    reference: str  # what to pull: REPOSITORY@sha256:... from a cluster, as written in manifests
    containers: list[ContainerUse] = field(default_factory=list)
    # (namespace, Secret name) of the imagePullSecrets of the pods that run it, first seen first.
    pull_secrets: list[tuple[str, str]] = field(default_factory=list)

    def record(self, use: ContainerUse, secrets: list[tuple[str, str]]) -> None:
        if use not in self.containers:
            self.containers.append(use)
        for secret in secrets:
            if secret not in self.pull_secrets:
                self.pull_secrets.append(secret)


@dataclass
class ImagesInUse:
    images: dict[str, RunningImage] = field(default_factory=dict)  # by digest, or by reference
    # Containers that run something no image can be read for, with the reason.
    unreadable: list[tuple[ContainerUse, str]] = field(default_factory=list)
    unseen: str | None = None  # why some running pods could not be seen (Pods not listed)

    def add(
        self, key: str, reference: str, use: ContainerUse, secrets: list[tuple[str, str]]
    ) -> None:
        self.images.setdefault(key, RunningImage(reference)).record(use, secrets)

    def cannot_read(self, use: ContainerUse, why: str) -> None:
        """Once per container: its other pods would say the same."""
        if all(use != known for known, _ in self.unreadable):
            self.unreadable.append((use, why))


def _pull_secrets(pod_spec: dict[str, Any], namespace: str) -> list[tuple[str, str]]:
    names = (
        as_str(as_dict(entry).get("name")) for entry in as_list(pod_spec.get("imagePullSecrets"))
    )
    return [(namespace, name) for name in names if name]


def images_in_cluster(inventory: Inventory) -> ImagesInUse:
    """Every container of every running pod, by the digest its status says it runs."""
    by_uid = {obj.uid: obj for obj in inventory if obj.uid}
    found = ImagesInUse(unseen=inventory.coverage.gap(["Pod"]))
    for pod in inventory.of_kind("Pod"):
        status = as_dict(pod.raw.get("status"))
        if as_str(status.get("phase")) in FINISHED_PHASES:
            continue
        top = top_owner(pod, by_uid)
        owner = top if top.kind in POD_SPEC_PATHS else pod  # as Inventory.workloads folds
        spec = as_dict(pod.raw.get("spec"))
        secrets = _pull_secrets(spec, pod.namespace or "default")
        running = as_str(status.get("phase")) == "Running"
        for list_name in CONTAINER_LISTS:
            image_ids = _image_ids(status, list_name)
            for entry in as_list(spec.get(list_name)):
                name = as_str(as_dict(entry).get("name"))
                if not name:
                    continue
                use = ContainerUse(owner.subject.with_container(name), owner.location)
                image_id = image_ids.get(name)
                if image_id is None:
                    # A pod still being scheduled runs nothing yet; a running one whose status
                    # does not say what a container runs cannot be judged.
                    if running and list_name == "containers":
                        found.cannot_read(
                            use, f"pod {pod.namespace}/{pod.name} status gives no imageID"
                        )
                    continue
                try:
                    reference, digest = pinned_reference(image_id)
                except ImageIdError as error:
                    found.cannot_read(use, f"pod {pod.namespace}/{pod.name}: {error}")
                    continue
                found.add(digest, reference, use, secrets)
    return found


def _image_ids(status: dict[str, Any], list_name: str) -> dict[str, str]:
    ids: dict[str, str] = {}
    for entry in as_list(status.get(STATUS_LISTS[list_name])):
        entry = as_dict(entry)
        name, image_id = as_str(entry.get("name")), as_str(entry.get("imageID"))
        if name and image_id:
            ids[name] = image_id
    return ids


def images_in_manifests(inventory: Inventory) -> ImagesInUse:
    """The image each workload container names (tag or digest), as written."""
    found = ImagesInUse()
    for workload in inventory.workloads:
        for container in workload.containers:
            use = ContainerUse(
                workload.subject.with_container(container.name),
                workload.obj.location,
                workload.field_path(f"{container.path}.image"),
            )
            if not container.image:
                found.cannot_read(use, "the container names no image")
                continue
            found.add(container.image, container.image, use, [])
    return found
