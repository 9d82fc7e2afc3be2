"""Audit events as the API server writes them, for tests: a realistic default that each
test changes only where it matters."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

START = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
_ids = itertools.count(1)


def stamp(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def event(
    *,
    at: float = 0.0,
    user: str = "alice",
    groups: tuple[str, ...] = ("system:authenticated",),
    verb: str = "get",
    resource: str | None = "pods",
    subresource: str | None = None,
    namespace: str | None = "shop",
    name: str | None = "web-1",
    api_group: str = "",
    code: int = 200,
    decision: str | None = "allow",
    stage: str = "ResponseComplete",
    level: str = "Metadata",
    source_ip: str = "10.0.0.5",
    user_agent: str = "kubectl/v1.31.0 (linux/amd64) kubernetes/abc",
    audit_id: str | None = None,
    request_object: dict[str, Any] | None = None,
    response_object: dict[str, Any] | None = None,
    impersonate: str | None = None,
    uri: str | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": level,
        "auditID": audit_id or f"00000000-0000-4000-8000-{next(_ids):012d}",
        "stage": stage,
        "verb": verb,
        "user": {"username": user, "groups": list(groups)},
        "sourceIPs": [source_ip],
        "userAgent": user_agent,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": stamp(at),
        "stageTimestamp": stamp(at + 0.004),
    }
    if resource is not None:
        ref: dict[str, Any] = {"resource": resource, "apiVersion": "v1"}
        if api_group:
            ref["apiGroup"] = api_group
        if namespace:
            ref["namespace"] = namespace
        if name:
            ref["name"] = name
        if subresource:
            ref["subresource"] = subresource
        data["objectRef"] = ref
        group_path = f"/apis/{api_group}/v1" if api_group else "/api/v1"
        ns_path = f"/namespaces/{namespace}" if namespace else ""
        tail = f"/{name}" if name else ""
        sub = f"/{subresource}" if subresource else ""
        data["requestURI"] = uri or f"{group_path}{ns_path}/{resource}{tail}{sub}"
    else:
        data["requestURI"] = uri or "/version"
    if decision is not None:
        data["annotations"] = {"authorization.k8s.io/decision": decision}
    if request_object is not None:
        data["requestObject"] = request_object
    if response_object is not None:
        data["responseObject"] = response_object
    if impersonate is not None:
        data["impersonatedUser"] = {"username": impersonate, "groups": ["system:authenticated"]}
    return data


def line(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def write_log(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(line(e) for e in events))
    return path


def pod(name: str = "web-1", **spec: Any) -> dict[str, Any]:
    containers = spec.pop("containers", [{"name": "app", "image": "shop/web:1"}])
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"containers": containers, **spec},
    }


def binding(role: str = "cluster-admin", kind: str = "ClusterRoleBinding") -> dict[str, Any]:
    return {
        "kind": kind,
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "grant"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "User", "name": "mallory"}],
    }


def secret_write(value: str) -> dict[str, Any]:
    """A Secret creation logged at RequestResponse level: its body holds `value`."""
    body = {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"name": "db"},
        "stringData": {"password": value},
    }
    return event(
        verb="create",
        resource="secrets",
        name="db",
        code=201,
        level="RequestResponse",
        request_object=body,
        response_object=body,
    )
