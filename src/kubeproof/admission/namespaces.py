"""Namespace labels for mode selection and Pod Security labels, read from the API server.

An AdmissionReview names the namespace but does not carry its labels, so the webhook asks
the API server (GET one namespace, cached) when `serve --namespace-labels` is given.
"""

from __future__ import annotations

from urllib.parse import quote

from kubeproof.admission.decide import NamespaceLabelCache
from kubeproof.inventory.objects import as_dict
from kubeproof.sources.cluster import ApiClient
from kubeproof.sources.kubeconfig import ClusterConnection

LOOKUP_TIMEOUT_S = 2.0  # well inside the webhook's own timeout


def cluster_namespace_labels(
    connection: ClusterConnection, ttl_s: float = 30.0
) -> NamespaceLabelCache:
    client = ApiClient(connection, timeout_s=LOOKUP_TIMEOUT_S)

    def fetch(namespace: str) -> dict[str, str]:
        found = as_dict(client.get(f"/api/v1/namespaces/{quote(namespace, safe='')}"))
        labels = as_dict(as_dict(found.get("metadata")).get("labels"))
        return {k: v for k, v in labels.items() if isinstance(v, str)}

    return NamespaceLabelCache(fetch, ttl_s=ttl_s)
