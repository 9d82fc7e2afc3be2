"""Which workload a pod belongs to, for runtime alerts that name only namespace and pod.

Findings attach to the top owner (a pod of a Deployment is that Deployment), so that
history survives pod churn. With a cluster connection the owner is read: the pod's
controller ownerReference, followed up (ReplicaSet → Deployment, Job → CronJob). Without
one, or when the pod is already gone, it is inferred from how controllers name their
pods, and the result says so.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from kubeproof.model import Subject

# Controllers name pods with suffixes from this alphabet (Kubernetes' SafeEncodeString).
_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
_DEPLOYMENT_POD = re.compile(rf"^(?P<name>.+)-{_SAFE}{{6,10}}-{_SAFE}{{5}}$")
_CRONJOB_POD = re.compile(rf"^(?P<name>.+)-\d{{8,10}}-{_SAFE}{{5}}$")
_STATEFULSET_POD = re.compile(r"^(?P<name>.+)-\d{1,5}$")
_GENERATED_POD = re.compile(rf"^(?P<name>.+)-{_SAFE}{{5}}$")

# Controller kinds whose objects may themselves be owned, and where to read them.
_OWNER_PATHS = {
    "ReplicaSet": "/apis/apps/v1/namespaces/{ns}/replicasets/{name}",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs/{name}",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
    "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets/{name}",
    "DaemonSet": "/apis/apps/v1/namespaces/{ns}/daemonsets/{name}",
    "CronJob": "/apis/batch/v1/namespaces/{ns}/cronjobs/{name}",
    "ReplicationController": "/api/v1/namespaces/{ns}/replicationcontrollers/{name}",
}
_API_VERSIONS = {
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
    "Pod": "v1",
    "ReplicationController": "v1",
}
# A DNS-1123 subdomain: what pod and namespace names are. Anything else from an alert is
# never put into an API path.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
MAX_OWNER_DEPTH = 5
CACHE_TTL_S = 300.0
MAX_CACHED = 10_000


@dataclass(frozen=True, slots=True)
class PodWorkload:
    subject: Subject
    inferred: bool
    note: str = ""


class Getter(Protocol):
    """What the lookup needs of kubeproof's cluster client (sources.cluster.ApiClient)."""

    def get(self, path: str, params: dict[str, str] | None = None, accept: str = "") -> Any: ...


def inferred_workload(namespace: str, pod: str, why: str = "no cluster connection") -> PodWorkload:
    """The owner a controller-made pod name implies. A name ending in one random
    five-character part fits a DaemonSet and a Job alike: it stays a Pod."""
    for pattern, kind in (
        (_CRONJOB_POD, "CronJob"),
        (_DEPLOYMENT_POD, "Deployment"),
        (_STATEFULSET_POD, "StatefulSet"),
    ):
        match = pattern.match(pod)
        if match:
            note = f"{why}: {kind} inferred from the pod name {pod}"
            return PodWorkload(_subject(kind, namespace, match.group("name")), True, note)
    if _GENERATED_POD.match(pod):
        note = f"{why}: the pod name {pod} fits a DaemonSet or a Job; attached to the pod"
    else:
        note = f"{why}: attached to the pod {pod} (no controller name pattern)"
    return PodWorkload(_subject("Pod", namespace, pod), True, note)


def _subject(kind: str, namespace: str, name: str) -> Subject:
    return Subject(_API_VERSIONS.get(kind, "v1"), kind, namespace, name)


class PodOwners:
    """Pod → top-owner workload through the cluster, cached for a few minutes (an alert
    storm from one pod costs one lookup); inferred when the cluster cannot answer."""

    def __init__(self, client: Getter | None, ttl_s: float = CACHE_TTL_S) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._cache: dict[tuple[str, str], tuple[float, PodWorkload]] = {}
        self._lock = threading.Lock()

    def workload(self, namespace: str, pod: str) -> PodWorkload:
        if self._client is None:
            return inferred_workload(namespace, pod)
        if not (_NAME.match(namespace) and _NAME.match(pod)):
            return inferred_workload(namespace, pod, "not a valid pod or namespace name")
        key = (namespace, pod)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self._ttl_s:
            return cached[1]
        found = self._look_up(self._client, namespace, pod)
        with self._lock:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[key] = (now, found)
        return found

    def _look_up(self, client: Getter, namespace: str, pod: str) -> PodWorkload:
        from kubeproof.sources.cluster import ApiError, ClusterError

        path = f"/api/v1/namespaces/{namespace}/pods/{pod}"
        kind, name = "Pod", pod
        try:
            obj = client.get(path)
            for _ in range(MAX_OWNER_DEPTH):
                owner = _controller(obj)
                if owner is None:
                    break
                kind, name = owner
                template = _OWNER_PATHS.get(kind)
                if template is None:
                    break  # a custom controller: its name is as far as we can go
                obj = client.get(template.format(ns=namespace, name=name))
        except ApiError as error:
            if kind == "Pod":
                reason = "not found in the cluster" if error.status == 404 else "not readable"
                return inferred_workload(namespace, pod, f"pod {reason} ({error.status})")
            # The owner is known from the reference, only not readable itself.
        except ClusterError:
            return inferred_workload(namespace, pod, "cluster unreachable")
        return PodWorkload(_subject(kind, namespace, name), False)


def _controller(obj: Any) -> tuple[str, str] | None:
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    references = metadata.get("ownerReferences") if isinstance(metadata, dict) else None
    for reference in references if isinstance(references, list) else ():
        if not isinstance(reference, dict) or reference.get("controller") is not True:
            continue
        kind, name = reference.get("kind"), reference.get("name")
        if isinstance(kind, str) and isinstance(name, str) and kind and name:
            return kind, name
    return None
