"""A typed, read-only view of one Kubernetes object as it came from a source."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubeproof.model import Location, Subject

# Kinds whose objects live outside any namespace; everything else defaults to "default".
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "StorageClass",
        "IngressClass",
        "PriorityClass",
        "RuntimeClass",
        "CertificateSigningRequest",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "APIService",
        "PodSecurityPolicy",
    }
)


def as_dict(value: Any) -> dict[str, Any]:
    """A mapping field, or an empty one when the field is missing or of the wrong type."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """A list field, or an empty one when the field is missing or of the wrong type."""
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(slots=True)
class K8sObject:
    raw: dict[str, Any]
    api_version: str
    kind: str
    name: str
    namespace: str | None
    location: Location | None = None
    # Objects whose namespace was not written down land in "default", as kubectl would.
    namespace_defaulted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any], location: Location | None = None) -> K8sObject:
        data = dict(raw)
        metadata = as_dict(data.get("metadata"))
        kind = as_str(data.get("kind")) or ""
        name = as_str(metadata.get("name")) or as_str(metadata.get("generateName")) or ""
        namespace = as_str(metadata.get("namespace"))
        defaulted = False
        if kind in CLUSTER_SCOPED_KINDS:
            namespace = None
        elif not namespace:
            namespace, defaulted = "default", True
        return cls(
            raw=data,
            api_version=as_str(data.get("apiVersion")) or "",
            kind=kind,
            name=name,
            namespace=namespace,
            location=location,
            namespace_defaulted=defaulted,
        )

    @property
    def metadata(self) -> dict[str, Any]:
        return as_dict(self.raw.get("metadata"))

    @property
    def labels(self) -> dict[str, str]:
        return {k: v for k, v in as_dict(self.metadata.get("labels")).items() if isinstance(v, str)}

    @property
    def annotations(self) -> dict[str, str]:
        annotations = as_dict(self.metadata.get("annotations"))
        return {k: v for k, v in annotations.items() if isinstance(v, str)}

    @property
    def spec(self) -> dict[str, Any]:
        return as_dict(self.raw.get("spec"))

    @property
    def uid(self) -> str | None:
        return as_str(self.metadata.get("uid"))

    @property
    def subject(self) -> Subject:
        return Subject(self.api_version, self.kind, self.namespace, self.name)

    def __str__(self) -> str:
        return str(self.subject)
