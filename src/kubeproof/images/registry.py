"""A read-only client of the OCI distribution API v2: manifests, indexes and blobs, all
verified against their digests. Anonymous, bearer-token (WWW-Authenticate) and basic
authentication; retries with backoff on 429 and 5xx; timeouts; a clear error for 401, 403
and 404. Loopback registries are spoken to over plain HTTP, every other one over HTTPS."""

from __future__ import annotations

import io
import ipaddress
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message
from http.client import HTTPException, HTTPResponse
from pathlib import Path
from typing import IO, cast

from kubeproof.images.auth import Challenge, Credentials, load_credentials, parse_challenge
from kubeproof.images.digest import digest_of, verify_bytes
from kubeproof.images.errors import ImageError
from kubeproof.images.manifest import (
    ACCEPT,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    Descriptor,
    Platform,
    parse_json_document,
    resolve_manifest,
)
from kubeproof.images.reference import DOCKER_HUB, RegistryReference
from kubeproof.images.source import OpenedImage, layers_of_manifest
from kubeproof.inventory.objects import as_str

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 30.0


class RegistryError(ImageError):
    """The registry refused or failed a request; the message names registry and status."""


def _describe(error: Exception) -> str:
    """An http.client or socket error for a message (a bad status line can be 64 KiB long)."""
    text = str(error)[:120]
    return f"{type(error).__name__}: {text!r}" if text else type(error).__name__


class _Body(io.RawIOBase):
    """A response body whose malformed HTTP (a broken chunk, an overlong line) or dropped
    connection is a RegistryError naming the registry and URL, not an http.client error."""

    def __init__(self, response: IO[bytes], where: str) -> None:
        super().__init__()
        self._response = response
        self._where = where

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            chunk = self._response.read(len(buffer))
        except (HTTPException, OSError) as error:
            raise RegistryError(f"{self._where} failed ({_describe(error)})") from None
        memoryview(buffer)[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        self._response.close()
        super().close()


def is_loopback(registry: str) -> bool:
    host = urllib.parse.urlsplit(f"//{registry}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_base(registry: str) -> str:
    host = "registry-1.docker.io" if registry == DOCKER_HUB else registry
    return f"{'http' if is_loopback(registry) else 'https'}://{host}"


def _retry_after(response: urllib.error.HTTPError, attempt: int, backoff: float) -> float:
    header = response.headers.get("Retry-After", "") if response.headers else ""
    if header.strip().isdigit():
        return float(min(float(header), MAX_RETRY_AFTER))
    return backoff * (2.0**attempt)


class RegistryClient:
    def __init__(
        self,
        registry: str,
        registry_config: Path | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.5,
        base_url: str | None = None,
    ) -> None:
        self.registry = registry
        self.base = base_url or api_base(registry)
        self.timeout = timeout
        self.retries = max(1, retries)
        self.backoff = backoff
        self._config = registry_config
        self._credentials: Credentials | None = None
        self._credentials_loaded = False
        self._authorization: dict[str, str] = {}  # per repository scope
        self._opener = urllib.request.build_opener()

    # -- transport -----------------------------------------------------------------------

    def credentials(self) -> Credentials | None:
        if not self._credentials_loaded:
            self._credentials = load_credentials(self.registry, self._config)
            self._credentials_loaded = True
        return self._credentials

    def _send(
        self, url: str, headers: dict[str, str], authorization: str | None
    ) -> HTTPResponse | urllib.error.HTTPError:
        """One request with retries on 429/5xx and connection failures; an HTTP error
        status is returned (not raised) for the caller to explain."""
        for attempt in range(self.retries):
            request = urllib.request.Request(url, headers=headers)
            if authorization:
                # Unredirected: never forwarded when a blob GET redirects to storage.
                request.add_unredirected_header("Authorization", authorization)
            last = attempt == self.retries - 1
            try:
                return cast(HTTPResponse, self._opener.open(request, timeout=self.timeout))
            except urllib.error.HTTPError as error:
                if error.code not in RETRY_STATUSES or last:
                    return error
                error.close()
                time.sleep(_retry_after(error, attempt, self.backoff))
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                if last:
                    reason = getattr(error, "reason", error)
                    raise RegistryError(
                        f"registry {self.registry}: cannot reach it ({reason})"
                    ) from None
                time.sleep(self.backoff * (2.0**attempt))
            except HTTPException as error:  # not HTTP at all: retrying would not help
                raise RegistryError(
                    f"registry {self.registry}: malformed HTTP answer to {url} ({_describe(error)})"
                ) from None
        raise AssertionError("unreachable")

    def _body(self, response: IO[bytes], url: str) -> IO[bytes]:
        """The body, read in full by read(n) (a short read would look like a size mismatch)."""
        return io.BufferedReader(_Body(response, f"registry {self.registry}: reading {url}"))

    def _token(self, challenge: Challenge, repository: str) -> str:
        realm = challenge.params.get("realm", "")
        if urllib.parse.urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(
                f"registry {self.registry}: bearer challenge without a usable realm"
            )
        query = {"scope": challenge.params.get("scope") or f"repository:{repository}:pull"}
        if challenge.params.get("service"):
            query["service"] = challenge.params["service"]
        url = f"{realm}{'&' if '?' in realm else '?'}{urllib.parse.urlencode(query)}"
        credentials = self.credentials()
        response = self._send(
            url, {"Accept": "application/json"}, credentials.basic_header() if credentials else None
        )
        status = response.status if isinstance(response, HTTPResponse) else response.code
        with self._body(response, url) as stream:
            body = stream.read(1 << 20)
        if status != 200:
            raise RegistryError(
                f"registry {self.registry}: the token service refused "
                f"{'the configured credentials' if credentials else 'anonymous access'}"
                f" to {repository} (HTTP {status})"
            )
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply
            raise RegistryError(
                f"registry {self.registry}: token service answer is not JSON"
            ) from None
        token = as_str(document.get("token")) if isinstance(document, dict) else None
        token = token or (
            as_str(document.get("access_token")) if isinstance(document, dict) else None
        )
        if not token:
            raise RegistryError(f"registry {self.registry}: token service gave no token")
        return f"Bearer {token}"

    def _authorize(self, response: urllib.error.HTTPError, repository: str) -> str:
        challenge = parse_challenge(
            response.headers.get("WWW-Authenticate", "") if response.headers else ""
        )
        if challenge is not None and challenge.scheme == "bearer":
            return self._token(challenge, repository)
        credentials = self.credentials()
        if challenge is not None and challenge.scheme == "basic" and credentials is not None:
            return credentials.basic_header()
        raise RegistryError(
            f"registry {self.registry}: {repository} needs credentials and "
            "none are configured for this registry (docker config.json "
            "`auths`, see --registry-config)"
        )

    def _get(
        self, path: str, repository: str, what: str, accept: str | None = None
    ) -> tuple[IO[bytes], Message]:
        """The body (see _body) and the headers of a successful GET."""
        url = f"{self.base}/v2/{repository}/{path}"
        headers = {"Accept": accept} if accept else {}
        authorization = self._authorization.get(repository)
        response = self._send(url, headers, authorization)
        if (
            isinstance(response, urllib.error.HTTPError)
            and response.code == 401
            and authorization is None
        ):
            with response:
                authorization = self._authorize(response, repository)
            self._authorization[repository] = authorization
            response = self._send(url, headers, authorization)
        if isinstance(response, HTTPResponse):
            return self._body(response, url), response.headers
        code = response.code
        response.close()
        if code == 401:
            raise RegistryError(
                f"registry {self.registry}: 401 unauthorized for {what}: the "
                "credentials were rejected"
            )
        if code == 403:
            raise RegistryError(f"registry {self.registry}: 403 access denied to {what}")
        if code == 404:
            raise RegistryError(f"registry {self.registry}: 404 {what} not found")
        raise RegistryError(f"registry {self.registry}: HTTP {code} for {what}")

    # -- the API ------------------------------------------------------------------------

    def get_manifest(self, repository: str, identifier: str) -> tuple[bytes, str | None, str]:
        """(bytes, announced media type, verified digest) of a manifest or index."""
        what = (
            f"manifest {repository}:{identifier}"
            if not identifier.startswith("sha")
            else f"manifest {repository}@{identifier}"
        )
        body, headers = self._get(f"manifests/{identifier}", repository, what, ACCEPT)
        with body:
            data = body.read(MAX_MANIFEST_BYTES + 1)
        media_type = headers.get("Content-Type")
        announced_digest = headers.get("Docker-Content-Digest")
        if len(data) > MAX_MANIFEST_BYTES:
            raise RegistryError(
                f"registry {self.registry}: {what} is over {MAX_MANIFEST_BYTES} bytes"
            )
        where = f"registry {self.registry} {what}"
        if identifier.startswith(("sha256:", "sha512:")):
            verify_bytes(data, identifier, where)
            return data, media_type, identifier
        if announced_digest:
            verify_bytes(data, announced_digest, where)
        return data, media_type, digest_of(data)

    def get_referrers(self, repository: str, digest: str) -> bytes:
        """The image index listing the manifests whose `subject` is `digest` (the OCI 1.1
        referrers API). A registry without the API answers 404, raised as RegistryError."""
        what = f"referrers of {repository}@{digest}"
        with self._get(f"referrers/{digest}", repository, what, OCI_INDEX)[0] as body:
            data = body.read(MAX_MANIFEST_BYTES + 1)
        if len(data) > MAX_MANIFEST_BYTES:
            raise RegistryError(
                f"registry {self.registry}: {what} is over {MAX_MANIFEST_BYTES} bytes"
            )
        return data

    def open_blob(self, repository: str, digest: str) -> IO[bytes]:
        """The blob's byte stream, unverified: callers wrap it in a VerifyingReader."""
        return self._get(f"blobs/{digest}", repository, f"blob {repository}@{digest}")[0]

    def read_blob(
        self, repository: str, descriptor: Descriptor, limit: int = MAX_MANIFEST_BYTES
    ) -> bytes:
        if descriptor.size > limit:
            raise RegistryError(
                f"registry {self.registry}: blob {descriptor.digest} is "
                f"{descriptor.size} bytes, over the {limit} byte limit"
            )
        with self.open_blob(repository, descriptor.digest) as stream:
            data = stream.read(limit + 1)
        if len(data) != descriptor.size:
            raise ImageError(
                f"registry {self.registry}: blob {descriptor.digest}: size "
                f"mismatch: expected {descriptor.size} bytes, got {len(data)}"
            )
        verify_bytes(data, descriptor.digest, f"registry {self.registry} blob")
        return data

    def open_image(self, reference: RegistryReference, platform: Platform) -> OpenedImage:
        repository = reference.repository
        top, media_type, digest = self.get_manifest(repository, reference.identifier)

        def fetch(descriptor: Descriptor) -> tuple[bytes, str | None]:
            data, announced, _ = self.get_manifest(repository, descriptor.digest)
            if len(data) != descriptor.size:
                raise ImageError(
                    f"registry {self.registry}: manifest {descriptor.digest}: "
                    "size differs from its descriptor"
                )
            return data, announced

        where = f"registry image {reference}"
        manifest = resolve_manifest(top, digest, media_type, fetch, platform, where)
        config = parse_json_document(self.read_blob(repository, manifest.config), f"{where} config")
        layers = layers_of_manifest(
            manifest, config, lambda d: lambda: self.open_blob(repository, d), where
        )
        return OpenedImage(str(reference), manifest.digest, config, layers, repository=repository)
