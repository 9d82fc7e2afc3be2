"""Manifests to run the webhook in a cluster: namespace, service account, RBAC, policy,
Deployment, Service, PodDisruptionBudget and the ValidatingWebhookConfiguration.

The Deployment is written to pass `kubeproof scan` under pss-restricted: the webhook that
enforces the rule must not break it (tests/admission/test_manifests.py checks).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import yaml

from kubeproof import __version__

NAME = "kubeproof-webhook"
TLS_SECRET = "kubeproof-webhook-tls"
CERT_MANAGER_API = "cert-manager.io/v1"
CA_INJECTION = "cert-manager.io/inject-ca-from"
PORT = 8443
DEFAULT_IMAGE = f"kubeproof/kubeproof:{__version__}"
DEFAULT_POLICY = """\
apiVersion: kubeproof.dev/v1alpha1
kind: AdmissionPolicy
enforce:
  frameworks: [pss-restricted]
defaultMode: enforce
failClosed: true
"""
# Resources whose objects carry a pod spec (see inventory/workloads.py POD_SPEC_PATHS).
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("", ("pods", "pods/ephemeralcontainers", "replicationcontrollers", "podtemplates")),
    ("apps", ("deployments", "replicasets", "statefulsets", "daemonsets")),
    ("batch", ("jobs", "cronjobs")),
)


@dataclass(frozen=True)
class ManifestOptions:
    namespace: str = "kubeproof"
    image: str = DEFAULT_IMAGE
    ca_bundle: bytes | None = None
    policy_text: str = DEFAULT_POLICY
    failure_policy: str = "Fail"
    timeout_seconds: int = 5
    replicas: int = 2
    # A Secret whose key `url` is the evidence store's URL: decisions are recorded there.
    db_secret: str | None = None
    cluster_name: str | None = None  # what the store files the decisions under
    # cert-manager issues the serving certificate and its CA injector fills caBundle.
    cert_manager: bool = False


def webhook_rules() -> list[dict[str, Any]]:
    return [
        {
            "apiGroups": [group],
            "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": list(resources),
            "scope": "Namespaced",
        }
        for group, resources in RULES
    ]


def webhook_configuration(options: ManifestOptions) -> dict[str, Any]:
    client: dict[str, Any] = {
        "service": {"namespace": options.namespace, "name": NAME, "path": "/validate", "port": 443}
    }
    if options.ca_bundle is not None:
        client["caBundle"] = base64.b64encode(options.ca_bundle).decode()
    metadata: dict[str, Any] = {"name": NAME, "labels": _labels()}
    if options.cert_manager:
        # cert-manager's CA injector copies the serving certificate's CA into caBundle.
        metadata["annotations"] = {CA_INJECTION: f"{options.namespace}/{NAME}"}
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": metadata,
        "webhooks": [
            {
                "name": "workloads.kubeproof.dev",
                "admissionReviewVersions": ["v1"],
                "clientConfig": client,
                "rules": webhook_rules(),
                "failurePolicy": options.failure_policy,
                "matchPolicy": "Equivalent",
                "sideEffects": "None",
                "timeoutSeconds": options.timeout_seconds,
                # The webhook must never judge its own namespace (it could not start again
                # after a denial) nor kube-system (the control plane's own pods).
                "namespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "NotIn",
                            "values": sorted({"kube-system", options.namespace}),
                        }
                    ]
                },
                # Mirror pods of static pods come from a node's files, not the API: denying
                # them would only hide them from the API, not stop them.
                "matchConditions": [
                    {
                        "name": "not-kubelet-mirror-pods",
                        "expression": '!("system:nodes" in request.userInfo.groups)',
                    }
                ],
            }
        ],
    }


def all_manifests(options: ManifestOptions) -> list[dict[str, Any]]:
    namespace = options.namespace
    labels = _labels()
    metadata = {"name": NAME, "namespace": namespace, "labels": labels}
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata,
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": NAME, "labels": labels},
            # Namespace labels only: they select the policy mode for a namespace.
            "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": NAME, "labels": labels},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": NAME,
            },
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{NAME}-policy", "namespace": namespace, "labels": labels},
            "data": {"policy.yaml": options.policy_text},
        },
        *(cert_manager_resources(options) if options.cert_manager else ()),
        _deployment(options),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata,
            "spec": {
                "type": "ClusterIP",
                "selector": {"app.kubernetes.io/name": NAME},
                "ports": [{"name": "https", "port": 443, "targetPort": "https"}],
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": metadata,
            "spec": {
                "minAvailable": 1,
                "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            },
        },
        webhook_configuration(options),
    ]


def _deployment(options: ManifestOptions) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/healthz", "port": "https", "scheme": "HTTPS"}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": options.namespace, "labels": _labels()},
        "spec": {
            "replicas": options.replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            "template": {
                "metadata": {"labels": _labels()},
                "spec": {
                    "serviceAccountName": NAME,
                    # Its token reads namespace labels (--namespace-labels); nothing else.
                    "automountServiceAccountToken": True,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
                        }
                    ],
                    "containers": [
                        {
                            "name": "webhook",
                            "image": options.image,
                            "imagePullPolicy": "Always",
                            "args": [
                                "webhook",
                                "serve",
                                "--policy=/etc/kubeproof/policy/policy.yaml",
                                "--tls-cert=/etc/kubeproof/tls/tls.crt",
                                "--tls-key=/etc/kubeproof/tls/tls.key",
                                "--host=0.0.0.0",
                                f"--port={PORT}",
                                "--namespace-labels",
                                *_evidence_args(options),
                            ],
                            **_evidence_env(options),
                            "ports": [{"name": "https", "containerPort": PORT}],
                            "readinessProbe": {
                                **probe,
                                "httpGet": {**probe["httpGet"], "path": "/readyz"},
                            },
                            "livenessProbe": probe,
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"memory": "256Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {
                                    "name": "policy",
                                    "mountPath": "/etc/kubeproof/policy",
                                    "readOnly": True,
                                },
                                {
                                    "name": "tls",
                                    "mountPath": "/etc/kubeproof/tls",
                                    "readOnly": True,
                                },
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "policy", "configMap": {"name": f"{NAME}-policy"}},
                        {"name": "tls", "secret": {"secretName": TLS_SECRET}},
                    ],
                },
            },
        },
    }


def cert_manager_resources(options: ManifestOptions) -> list[dict[str, Any]]:
    """A CA of the webhook's own (a self-signed Issuer signs it; the CA is no one else's),
    a CA Issuer, and the serving Certificate for the Service's names, written to the
    Secret the Deployment mounts. cert-manager renews it; the server reloads the files."""
    namespace, labels = options.namespace, _labels()
    ca_name, service = f"{NAME}-ca", f"{NAME}.{options.namespace}.svc"

    def metadata(name: str) -> dict[str, Any]:
        return {"name": name, "namespace": namespace, "labels": labels}

    key = {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}
    return [
        {
            "apiVersion": CERT_MANAGER_API,
            "kind": "Issuer",
            "metadata": metadata(f"{NAME}-selfsigned"),
            "spec": {"selfSigned": {}},
        },
        {
            "apiVersion": CERT_MANAGER_API,
            "kind": "Certificate",
            "metadata": metadata(ca_name),
            "spec": {
                "isCA": True,
                "commonName": ca_name,
                "secretName": ca_name,
                "duration": "87600h",  # ten years: the CA only signs this webhook's certificate
                "privateKey": key,
                "issuerRef": {"kind": "Issuer", "name": f"{NAME}-selfsigned"},
            },
        },
        {
            "apiVersion": CERT_MANAGER_API,
            "kind": "Issuer",
            "metadata": metadata(ca_name),
            "spec": {"ca": {"secretName": ca_name}},
        },
        {
            "apiVersion": CERT_MANAGER_API,
            "kind": "Certificate",
            "metadata": metadata(NAME),
            "spec": {
                "secretName": TLS_SECRET,
                "dnsNames": [service, f"{service}.cluster.local"],
                "duration": "2160h",
                "renewBefore": "360h",
                "privateKey": key,
                "usages": ["server auth", "digital signature", "key encipherment"],
                "issuerRef": {"kind": "Issuer", "name": ca_name},
            },
        },
    ]


def _evidence_args(options: ManifestOptions) -> list[str]:
    if options.db_secret is None or options.cluster_name is None:
        return []
    return [f"--cluster-name={options.cluster_name}"]


def _evidence_env(options: ManifestOptions) -> dict[str, Any]:
    """$KUBEPROOF_DB from the Secret: the URL (and its password) never sits in the
    Deployment itself."""
    if options.db_secret is None:
        return {}
    reference = {"secretKeyRef": {"name": options.db_secret, "key": "url"}}
    return {"env": [{"name": "KUBEPROOF_DB", "valueFrom": reference}]}


def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "kubeproof"}


def render(options: ManifestOptions) -> str:
    documents = all_manifests(options)
    return yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False)
