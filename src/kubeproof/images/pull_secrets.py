"""Registry credentials from the imagePullSecrets of the pods that run an image, read from
the cluster (only the Secrets pods name, only of the two docker config types). They live in
memory for the scan: never logged, stored or printed; messages name the Secret, never its
content."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from kubeproof.images.auth import Credentials, credentials_in_auths
from kubeproof.images.errors import ImageError
from kubeproof.inventory.objects import as_dict, as_str
from kubeproof.sources.cluster import ApiClient, ApiError, ClusterError

DOCKER_CONFIG_JSON = "kubernetes.io/dockerconfigjson"  # data[".dockerconfigjson"]: {"auths": …}
DOCKER_CFG = "kubernetes.io/dockercfg"  # data[".dockercfg"]: the auths map itself (legacy)
_DATA_KEYS = {DOCKER_CONFIG_JSON: ".dockerconfigjson", DOCKER_CFG: ".dockercfg"}
MAX_SECRET_BYTES = 1 << 20  # the API server's own limit on a Secret


class PullSecretError(ValueError):
    """A Secret that is not a usable docker config; the message names it, never its data."""


def auths_of_secret(secret: dict[str, Any], where: str) -> dict[str, Any]:
    """The `auths` map (registry -> entry) of a dockerconfigjson or dockercfg Secret."""
    kind = as_str(secret.get("type")) or ""
    key = _DATA_KEYS.get(kind)
    if key is None:
        raise PullSecretError(
            f"{where} is of type {kind or '(none)'!r}, not {DOCKER_CONFIG_JSON} or {DOCKER_CFG}"
        )
    encoded = as_str(as_dict(secret.get("data")).get(key))
    if not encoded:
        raise PullSecretError(f"{where} has no {key} entry")
    if len(encoded) > MAX_SECRET_BYTES * 2:
        raise PullSecretError(f"{where}: {key} is too large")
    try:
        document = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError, RecursionError):
        raise PullSecretError(f"{where}: {key} is not base64 of a JSON document") from None
    if not isinstance(document, dict):
        raise PullSecretError(f"{where}: {key} is not a JSON object")
    auths = document.get("auths") if kind == DOCKER_CONFIG_JSON else document
    if not isinstance(auths, dict):
        raise PullSecretError(f"{where}: {key} has no `auths` object")
    return auths


@dataclass(frozen=True)
class PullSecret:
    namespace: str
    name: str
    auths: dict[str, Any] = field(repr=False)  # holds credentials: never printed

    @property
    def where(self) -> str:
        return f"imagePullSecret {self.namespace}/{self.name}"

    def credentials(self, registry: str) -> Credentials | None:
        """Raises ImageError (naming the Secret and the entry) for an undecodable entry."""
        return credentials_in_auths(self.auths, registry, self.where)


class PullSecrets:
    """Reads each named Secret once, through the scan's cluster connection. A Secret that
    cannot be read (the scanner may lack `get secrets`, which is optional) or is not a docker
    config becomes a warning, and the image is pulled with the docker config or anonymously."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client
        self._read: dict[tuple[str, str], PullSecret | None] = {}
        self.warnings: list[str] = []

    def get(self, namespace: str, name: str) -> PullSecret | None:
        key = (namespace, name)
        if key not in self._read:
            self._read[key] = self._fetch(namespace, name)
        return self._read[key]

    def _fetch(self, namespace: str, name: str) -> PullSecret | None:
        where = f"imagePullSecret {namespace}/{name}"
        path = f"/api/v1/namespaces/{quote(namespace)}/secrets/{quote(name)}"
        try:
            secret = as_dict(self._client.get(path))
        except ApiError as error:
            why = "the scanner may not get Secrets" if error.status == 403 else error.detail
            if error.status == 404:
                why = "no such Secret"
            self.warnings.append(
                f"cannot read {where} ({why}): pulling with the docker config or anonymously"
            )
            return None
        except ClusterError as error:
            self.warnings.append(f"cannot read {where} ({error})")
            return None
        try:
            auths = auths_of_secret(secret, where)
        except PullSecretError as error:
            self.warnings.append(f"{error}: not used")
            return None
        return PullSecret(namespace, name, auths)

    def credentials_for(
        self, registry: str, secrets: list[tuple[str, str]]
    ) -> list[tuple[str, Credentials]]:
        """(where, credentials) for `registry` from each named Secret that has an entry."""
        found: list[tuple[str, Credentials]] = []
        for namespace, name in secrets:
            secret = self.get(namespace, name)
            if secret is None:
                continue
            try:
                credentials = secret.credentials(registry)
            except ImageError as error:
                if f"{error}: not used" not in self.warnings:
                    self.warnings.append(f"{error}: not used")
                continue
            if credentials is not None and all(credentials != c for _, c in found):
                found.append((secret.where, credentials))
        return found
