"""The file the API server's `--audit-webhook-config-file` reads: a kubeconfig naming
`kubeproof audit serve`'s /audit endpoint, the CA that signed its certificate and,
for mutual TLS, the client certificate the API server presents (by path: the private
key is never copied into the output)."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from kubeproof.bounded import UnreadableFile, read_ca_bundle


class WebhookConfigError(ValueError):
    pass


def webhook_kubeconfig(
    url: str,
    ca_file: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
) -> str:
    if not url.startswith("https://"):
        raise WebhookConfigError(f"--url {url}: the audit webhook must be https://")
    if (client_cert is None) != (client_key is None):
        raise WebhookConfigError("--client-cert and --client-key go together")
    cluster: dict[str, str] = {"server": url}
    if ca_file is not None:
        try:
            pem = read_ca_bundle(ca_file, f"--ca-file {ca_file}")
        except UnreadableFile as refused:
            raise WebhookConfigError(str(refused)) from None
        cluster["certificate-authority-data"] = base64.b64encode(pem).decode()
    user: dict[str, str] = {}
    if client_cert is not None and client_key is not None:
        user = {"client-certificate": str(client_cert), "client-key": str(client_key)}
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubeproof-audit", "cluster": cluster}],
        "users": [{"name": "kube-apiserver", "user": user}],
        "contexts": [
            {
                "name": "kubeproof-audit",
                "context": {"cluster": "kubeproof-audit", "user": "kube-apiserver"},
            }
        ],
        "current-context": "kubeproof-audit",
    }
    header = (
        "# kube-apiserver --audit-webhook-config-file=THIS-FILE --audit-policy-file=POLICY\n"
        "#   [--audit-webhook-batch-max-wait=5s]  (see docs/audit.md)\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False)
