"""The security-relevant part of a workload's pod spec, as an approved baseline records it,
and how a workload differs from what was approved.

What is kept is what changes a workload's exposure: images, the pod's and each
container's securityContext (capabilities, privileged, users, seccomp ...), host
namespaces, the service account and its token, volume types (hostPath with its path),
and ports. Environment values, ConfigMap and Secret contents never enter it: a volume
says only its type, never which Secret it mounts or what is in it. Values pass through
kubeproof's redaction, so a credential pasted into an image reference is not stored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from kubeproof.inventory.objects import as_dict, as_list, as_str
from kubeproof.inventory.workloads import Workload
from kubeproof.model import Subject
from kubeproof.redaction import redact, redact_data

SPEC_VERSION = 1
MAX_CHANGES_SHOWN = 10
WorkloadKey = tuple[str, str, str]  # kind, namespace ("" when none), name


def security_spec(workload: Workload) -> dict[str, Any]:
    """The workload's security-relevant fields, normalised (sorted, defaults filled) so
    that two specs that mean the same compare equal."""
    pod = workload.pod_spec
    containers: dict[str, Any] = {}
    for container in workload.containers:
        spec = container.spec
        containers[container.name] = {
            "list": container.list_name,
            "image": redact(container.image),
            "securityContext": _normalised_context(container.security_context),
            "ports": sorted(
                (_port(p) for p in as_list(spec.get("ports"))),
                key=_canonical,
            ),
        }
    return {
        "version": SPEC_VERSION,
        "serviceAccount": as_str(pod.get("serviceAccountName"))
        or as_str(pod.get("serviceAccount"))
        or "default",
        "automountServiceAccountToken": _flag(pod.get("automountServiceAccountToken")),
        "hostNetwork": pod.get("hostNetwork") is True,
        "hostPID": pod.get("hostPID") is True,
        "hostIPC": pod.get("hostIPC") is True,
        "hostUsers": _flag(pod.get("hostUsers")),
        "securityContext": _normalised_context(as_dict(pod.get("securityContext"))),
        "volumes": {
            as_str(as_dict(v).get("name")) or f"#{i}": _volume(as_dict(v))
            for i, v in enumerate(as_list(pod.get("volumes")))
        },
        "containers": containers,
    }


def _canonical(value: Any) -> bytes:
    """Canonical JSON (sorted keys). orjson refuses integers beyond 64 bits, which a
    hostile manifest may hold; the standard library writes them."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def spec_digest(spec: Mapping[str, Any]) -> str:
    """SHA-256 over the spec's canonical JSON (sorted keys)."""
    return hashlib.sha256(_canonical(spec)).hexdigest()


def spec_changes(approved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Each field that differs, as `path: before -> after` (`(none)` where absent)."""
    old, new = _flatten(approved), _flatten(current)
    changes = []
    for path in sorted(old.keys() | new.keys()):
        before, after = old.get(path, _ABSENT), new.get(path, _ABSENT)
        if before != after:
            changes.append(f"{path}: {_shown(before)} -> {_shown(after)}")
    return changes


def describe_changes(changes: list[str]) -> str:
    shown = "; ".join(changes[:MAX_CHANGES_SHOWN])
    more = len(changes) - MAX_CHANGES_SHOWN
    return shown + (f"; and {more} more" if more > 0 else "")


@dataclass(frozen=True, slots=True)
class ApprovedBaseline:
    id: int
    spec: dict[str, Any]
    digest: str
    decided_by: str
    decided_at: datetime


@dataclass(frozen=True)
class ApprovedBaselines:
    """The baselines in force for one cluster. A namespace is under change control when
    at least one of its workloads has an approved baseline."""

    by_workload: Mapping[WorkloadKey, ApprovedBaseline]
    namespaces: frozenset[str]

    def of(self, subject: Subject) -> ApprovedBaseline | None:
        return self.by_workload.get(workload_key(subject))


def workload_key(subject: Subject) -> WorkloadKey:
    return (subject.kind, subject.namespace or "", subject.name)


_ABSENT = object()
_CONTEXT_LISTS = ("add", "drop")


def _normalised_context(context: dict[str, Any]) -> dict[str, Any]:
    normalised: dict[str, Any] = {}
    for key, value in context.items():
        if key == "capabilities":
            capabilities = as_dict(value)
            value = {
                name: sorted({str(c).upper().removeprefix("CAP_") for c in as_list(found)})
                for name in _CONTEXT_LISTS
                if (found := capabilities.get(name))
            }
        if value not in (None, {}, []):
            normalised[key] = redact_data(value, key)
    return normalised


def _port(port: Any) -> dict[str, Any]:
    data = as_dict(port)
    return {
        "containerPort": data.get("containerPort"),
        "hostPort": data.get("hostPort"),
        "protocol": as_str(data.get("protocol")) or "TCP",
    }


def _volume(volume: dict[str, Any]) -> dict[str, Any]:
    kinds = sorted(k for k in volume if k != "name")
    described: dict[str, Any] = {"type": kinds[0] if len(kinds) == 1 else ",".join(kinds)}
    if "hostPath" in volume:
        host_path = as_dict(volume.get("hostPath"))
        described["path"] = redact(as_str(host_path.get("path")) or "")
        if kind := as_str(host_path.get("type")):
            described["hostPathType"] = kind
    return described


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Dict leaves by dotted path; lists stay whole (capability and port lists read
    better as one value)."""
    if isinstance(data, Mapping) and data:
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: data}


def _shown(value: Any) -> str:
    if value is _ABSENT:
        return "(none)"
    if isinstance(value, str):
        return value
    return _canonical(value).decode()
