"""AdmissionReview (admission.k8s.io/v1): reading a request and writing the answer.

Parsing never raises anything but ReviewError, whose message says what is wrong with the
request; the answer is a plain dict ready for JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubeproof.inventory.objects import as_dict, as_list, as_str

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
# Apiserver-side limits: a warning longer than this is truncated by the API server anyway.
MAX_WARNING_CHARS = 512
MAX_WARNINGS = 20


class ReviewError(Exception):
    """The body is not an AdmissionReview we can answer; `uid` is set when it was readable."""

    def __init__(self, message: str, uid: str | None = None) -> None:
        super().__init__(message)
        self.uid = uid


@dataclass(frozen=True)
class AdmissionRequest:
    uid: str
    kind: str  # request.kind.kind: Pod, Deployment ...
    group: str
    resource: str
    sub_resource: str
    operation: str
    namespace: str
    name: str
    username: str
    obj: dict[str, Any] | None
    old_obj: dict[str, Any] | None
    dry_run: bool = False
    groups: tuple[str, ...] = field(default_factory=tuple)


def parse_review(body: Any) -> AdmissionRequest:
    """The request of an AdmissionReview document (already decoded from JSON)."""
    if not isinstance(body, dict):
        raise ReviewError("the body is not a JSON object")
    if body.get("apiVersion") != API_VERSION or body.get("kind") != KIND:
        raise ReviewError(
            f"expected apiVersion {API_VERSION} kind {KIND}, got "
            f"{_short(body.get('apiVersion'))} {_short(body.get('kind'))}"
        )
    request = body.get("request")
    if not isinstance(request, dict):
        raise ReviewError("request is missing or not an object")
    uid = as_str(request.get("uid"))
    if not uid:
        raise ReviewError("request.uid is missing")
    kind = as_dict(request.get("kind"))
    resource = as_dict(request.get("resource"))
    operation = as_str(request.get("operation"))
    if not as_str(kind.get("kind")):
        raise ReviewError("request.kind.kind is missing", uid)
    if not operation:
        raise ReviewError("request.operation is missing", uid)
    user = as_dict(request.get("userInfo"))
    obj, old = request.get("object"), request.get("oldObject")
    if obj is not None and not isinstance(obj, dict):
        raise ReviewError("request.object is not an object", uid)
    if old is not None and not isinstance(old, dict):
        raise ReviewError("request.oldObject is not an object", uid)
    groups = tuple(g for g in as_list(user.get("groups")) if isinstance(g, str))
    return AdmissionRequest(
        uid=uid,
        kind=as_str(kind.get("kind")) or "",
        group=as_str(kind.get("group")) or "",
        resource=as_str(resource.get("resource")) or "",
        sub_resource=as_str(request.get("subResource")) or "",
        operation=operation,
        namespace=as_str(request.get("namespace")) or "",
        name=as_str(request.get("name")) or "",
        username=as_str(user.get("username")) or "",
        obj=obj,
        old_obj=old,
        dry_run=request.get("dryRun") is True,
        groups=groups,
    )


def answer(
    uid: str,
    allowed: bool,
    *,
    message: str = "",
    warnings: tuple[str, ...] = (),
    audit: dict[str, str] | None = None,
    code: int = 403,
) -> dict[str, Any]:
    """An AdmissionReview response. A denial carries a Status with code 403 (Forbidden),
    which the API server passes to the client with the message."""
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        response["status"] = {
            "status": "Failure",
            "code": code,
            "reason": "Forbidden" if code == 403 else "BadRequest",
            "message": message,
        }
    if warnings:
        response["warnings"] = [_truncate(w) for w in warnings[:MAX_WARNINGS]]
    if audit:
        response["auditAnnotations"] = audit
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_WARNING_CHARS else text[: MAX_WARNING_CHARS - 3] + "..."


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text[:60] or "''"
