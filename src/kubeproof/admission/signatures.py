"""cosign image signatures, verified against the policy's public keys.

cosign stores the signatures of image `REPO@sha256:HEX` as an OCI manifest tagged
`sha256-HEX.sig` in the same repository. Each layer of it is a simple-signing payload
(`application/vnd.dev.cosign.simplesigning.v1+json`) whose signature, base64, is the layer
annotation `dev.cosignproject.cosign/signature`. An image is signed when one payload
verifies with a policy key *and* names the image's own digest: a valid signature copied
from another image must not count. A Sigstore bundle attached to the digest as an OCI
referrer, verified with the same keys, counts as well (`kubeproof.admission.bundles`).

Verdicts are cached by digest, positive and negative for different times. A registry that
cannot be reached is never remembered as "unsigned": the next request asks again.

The registry is read through `kubeproof.images.registry.RegistryClient`, wrapped here (not
changed) with short timeouts, as an admission answer has seconds, not minutes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kubeproof.admission.bundles import (
    HASH_OF_CURVE,
    BundleProblem,
    Failure,
    attached_bundles,
    key_verifies,
    parse_bundle,
    verify_bundle,
)
from kubeproof.admission.keyless import verify_keyless
from kubeproof.admission.trustroot import KeylessTrust
from kubeproof.bounded import UnreadableFile, read_bounded
from kubeproof.images.digest import parse_digest
from kubeproof.images.errors import ImageError
from kubeproof.images.manifest import Descriptor
from kubeproof.images.reference import RegistryReference
from kubeproof.images.registry import RegistryClient, RegistryError
from kubeproof.inventory.objects import as_dict, as_list, as_str

MAX_KEY_FILE_BYTES = 64 << 10  # a PEM public key is under 1 KiB
SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_TYPE = "cosign container image signature"
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_SIGNATURE_LAYERS = 64  # more is an attack on the webhook's time, not a use

PublicKey = ec.EllipticCurvePublicKey | Ed25519PublicKey | rsa.RSAPublicKey


class KeyProblem(Exception):
    """A policy key cannot be used; the message says why, never the key's text."""


@dataclass(frozen=True, eq=False)
class PolicyKey:
    """A public key the policy trusts, named by the SHA-256 of its DER form."""

    key: PublicKey
    fingerprint: str

    def verifies(self, signature: bytes, payload: bytes) -> bool:
        return key_verifies(self.key, signature, payload)


def load_policy_key(text: str, base: Path | None = None) -> PolicyKey:
    """A PEM public key given inline, or the path of a file holding one (relative paths
    are read from `base`, the policy file's directory)."""
    if text.lstrip().startswith("-----BEGIN"):
        pem = text.encode()
    else:
        path = Path(text)
        if not path.is_absolute() and base is not None:
            path = base / path
        try:
            pem = read_bounded(path, MAX_KEY_FILE_BYTES, f"key file {text}")
        except UnreadableFile as refused:
            raise KeyProblem(str(refused)) from None
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyProblem("not a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in HASH_OF_CURVE:
            raise KeyProblem(f"ECDSA curve {key.curve.name} is not supported (P-256, P-384, P-521)")
    elif not isinstance(key, Ed25519PublicKey | rsa.RSAPublicKey):
        raise KeyProblem("unsupported key type (ECDSA, Ed25519 or RSA)")
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PolicyKey(key, "sha256:" + hashlib.sha256(der).hexdigest()[:16])


class Outcome(Enum):
    VERIFIED = "verified"
    UNSIGNED = "unsigned"  # no signature manifest or no signature in it
    UNKNOWN_KEY = "unknown-key"  # signatures, none by a policy key
    WRONG_DIGEST = "wrong-digest"  # signed by a policy key, but for another image
    NOT_FOUND = "not-found"  # the image itself is not in the registry
    REGISTRY_ERROR = "registry-error"  # unreachable, 5xx, refused credentials


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    digest: str | None
    detail: str = ""  # the trusted key, the other digest, or the registry's error
    bundles: bool = False  # the detail is about Sigstore bundles (admission/bundles.py)

    @property
    def cacheable(self) -> bool:
        return self.outcome is not Outcome.REGISTRY_ERROR


def signature_tag(digest: str) -> str:
    algorithm, hex_value = parse_digest(digest, "image digest")
    return f"{algorithm}-{hex_value}.sig"


def _is_not_found(error: RegistryError) -> bool:
    # RegistryClient reports a status only in its message ("registry R: 404 ... not found").
    return ": 404 " in str(error)


class SignatureVerifier:
    """Verdicts for (repository, digest, keys), cached: `positive_ttl_s` for a verified
    signature, `negative_ttl_s` for a missing or untrusted one, `tag_ttl_s` for a tag's
    digest. Thread-safe; one registry client per registry host."""

    def __init__(
        self,
        registry_config: Path | None = None,
        timeout_s: float = 1.5,
        retries: int = 2,
        positive_ttl_s: float = 300.0,
        negative_ttl_s: float = 30.0,
        tag_ttl_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        self._registry_config = registry_config
        self._timeout_s = timeout_s
        self._retries = retries
        self._positive_ttl_s = positive_ttl_s
        self._negative_ttl_s = negative_ttl_s
        self._tag_ttl_s = tag_ttl_s
        self._clock = clock
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._clients: dict[str, RegistryClient] = {}
        self._verdicts: dict[tuple[str, str, tuple[str, ...]], tuple[float, Verdict]] = {}
        self._tags: dict[str, tuple[float, str]] = {}
        self.registry_calls = 0  # manifest and blob requests made (tests, bench)

    def verify(
        self,
        reference: RegistryReference,
        keys: tuple[PolicyKey, ...],
        keyless: KeylessTrust | None = None,
    ) -> Verdict:
        """`keyless`: the trusted root and identities keyless bundles are verified with."""
        repository = f"{reference.registry}/{reference.repository}"
        digest = reference.digest
        if digest is None:
            resolved = self._resolve_tag(reference)
            if isinstance(resolved, Verdict):
                return resolved
            digest = resolved
        trusted = tuple(k.fingerprint for k in keys) + ((keyless.fingerprint,) if keyless else ())
        cache_key = (repository, digest, trusted)
        cached: Verdict | None = self._cached(self._verdicts, cache_key)
        if cached is not None:
            return cached
        verdict = self._check(reference, digest, keys, keyless)
        if verdict.cacheable:
            ttl = (
                self._positive_ttl_s
                if verdict.outcome is Outcome.VERIFIED
                else self._negative_ttl_s
            )
            self._store(self._verdicts, cache_key, (self._clock() + ttl, verdict))
        return verdict

    def resolved_digest(self, reference: RegistryReference) -> str | None:
        """The digest a tag resolved to while judging a recent request (no registry call):
        what an admission record names for an image given by tag."""
        if reference.digest is not None:
            return reference.digest
        resolved: str | None = self._cached(self._tags, str(reference))
        return resolved

    # -- registry -------------------------------------------------------------------------

    def _client(self, registry: str) -> RegistryClient:
        with self._lock:
            client = self._clients.get(registry)
            if client is None:
                client = RegistryClient(
                    registry,
                    self._registry_config,
                    timeout=self._timeout_s,
                    retries=self._retries,
                    backoff=0.1,
                )
                self._clients[registry] = client
            return client

    def _resolve_tag(self, reference: RegistryReference) -> str | Verdict:
        key = str(reference)
        cached: str | None = self._cached(self._tags, key)
        if cached is not None:
            return cached
        try:
            self.registry_calls += 1
            _, _, digest = self._client(reference.registry).get_manifest(
                reference.repository, reference.identifier
            )
        except RegistryError as error:
            outcome = Outcome.NOT_FOUND if _is_not_found(error) else Outcome.REGISTRY_ERROR
            return Verdict(outcome, None, str(error))
        except ImageError as error:
            return Verdict(Outcome.REGISTRY_ERROR, None, str(error))
        self._store(self._tags, key, (self._clock() + self._tag_ttl_s, digest))
        return digest

    def _check(
        self,
        reference: RegistryReference,
        digest: str,
        keys: tuple[PolicyKey, ...],
        keyless: KeylessTrust | None,
    ) -> Verdict:
        """Either a cosign signature tag or a Sigstore bundle suffices. A registry error
        on the tag ends the check: asking again would double an unreachable registry's
        delay, and the answer follows images.registryErrors either way."""
        verdict = self._check_signature_tag(reference, digest, keys)
        if verdict.outcome in (Outcome.VERIFIED, Outcome.REGISTRY_ERROR):
            return verdict
        return _telling(verdict, self._check_bundles(reference, digest, keys, keyless))

    def _check_bundles(
        self,
        reference: RegistryReference,
        digest: str,
        keys: tuple[PolicyKey, ...],
        keyless: KeylessTrust | None,
    ) -> Verdict:
        client = self._client(reference.registry)
        repository = reference.repository

        def counted() -> None:
            self.registry_calls += 1

        def manifest() -> bytes:
            counted()
            return client.get_manifest(repository, digest)[0]

        problems: list[BundleProblem] = []
        try:
            for data in attached_bundles(client, repository, digest, counted):
                try:
                    bundle = parse_bundle(data)
                    if bundle.certificate is not None and keyless is not None:
                        signer = verify_keyless(bundle, digest, keyless, manifest)
                    else:
                        signer = verify_bundle(bundle, digest, keys, manifest).fingerprint
                except BundleProblem as problem:
                    problems.append(problem)
                    continue
                return Verdict(Outcome.VERIFIED, digest, f"{signer} (Sigstore bundle)")
        except ImageError as error:  # RegistryError, or the image manifest off its digest
            return Verdict(Outcome.REGISTRY_ERROR, digest, str(error))
        for failure, outcome in _BUNDLE_OUTCOMES:
            found = [str(p) for p in problems if p.failure is failure]
            if found:
                return Verdict(outcome, digest, "; ".join(found[:3]), bundles=True)
        return Verdict(Outcome.UNSIGNED, digest)

    def _check_signature_tag(
        self, reference: RegistryReference, digest: str, keys: tuple[PolicyKey, ...]
    ) -> Verdict:
        client = self._client(reference.registry)
        repository = reference.repository
        try:
            self.registry_calls += 1
            document, _, _ = client.get_manifest(repository, signature_tag(digest))
        except RegistryError as error:
            if _is_not_found(error):
                return Verdict(Outcome.UNSIGNED, digest)
            return Verdict(Outcome.REGISTRY_ERROR, digest, str(error))
        except ImageError as error:
            return Verdict(Outcome.UNSIGNED, digest, f"signature manifest unusable: {error}")
        layers = _signature_layers(document)
        if not layers:
            return Verdict(Outcome.UNSIGNED, digest)
        other_digest: str | None = None
        for descriptor, signature in layers:
            try:
                self.registry_calls += 1
                payload = client.read_blob(repository, descriptor, MAX_PAYLOAD_BYTES)
            except RegistryError as error:
                if _is_not_found(error):
                    continue
                return Verdict(Outcome.REGISTRY_ERROR, digest, str(error))
            except ImageError:
                continue  # a corrupt payload proves nothing; other layers may
            for key in keys:
                if not key.verifies(signature, payload):
                    continue
                claimed = _signed_digest(payload)
                if claimed == digest:
                    return Verdict(Outcome.VERIFIED, digest, key.fingerprint)
                other_digest = claimed or "a payload that is not a cosign signature"
        if other_digest is not None:
            return Verdict(Outcome.WRONG_DIGEST, digest, other_digest)
        return Verdict(Outcome.UNKNOWN_KEY, digest)

    # -- cache ----------------------------------------------------------------------------

    def _cached(self, table: dict[Any, tuple[float, Any]], key: Any) -> Any:
        with self._lock:
            entry = table.get(key)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        return None

    def _store(self, table: dict[Any, tuple[float, Any]], key: Any, entry: Any) -> None:
        with self._lock:
            if len(table) >= self._max_entries:
                table.clear()  # bounded memory under a flood of distinct images
            table[key] = entry


# Bundle failures, most telling first, as the outcome they amount to.
_BUNDLE_OUTCOMES = (
    (Failure.WRONG_DIGEST, Outcome.WRONG_DIGEST),
    (Failure.UNKNOWN_KEY, Outcome.UNKNOWN_KEY),
    (Failure.UNVERIFIABLE, Outcome.UNSIGNED),
)
_TELLING = (Outcome.WRONG_DIGEST, Outcome.UNKNOWN_KEY, Outcome.UNSIGNED)


def _telling(tag: Verdict, bundle: Verdict) -> Verdict:
    """A verified bundle, or a registry error that hid the bundles; else, of two failed
    checks, the one that says more (a trusted key's signature for another image, then an
    untrusted signature, then none): the signature tag's on a tie, unless it found nothing
    at all and a bundle at least was there."""
    if bundle.outcome not in _TELLING or _TELLING.index(bundle.outcome) < _TELLING.index(
        tag.outcome
    ):
        return bundle
    if tag.outcome is bundle.outcome is Outcome.UNSIGNED and not tag.detail and bundle.detail:
        return bundle
    return tag


def _signature_layers(document: bytes) -> list[tuple[Descriptor, bytes]]:
    """(payload descriptor, decoded signature) of each simple-signing layer; anything
    malformed is skipped, as it could never verify."""
    try:
        manifest = json.loads(document)
    except ValueError:
        return []
    found: list[tuple[Descriptor, bytes]] = []
    for layer in as_list(as_dict(manifest).get("layers"))[:MAX_SIGNATURE_LAYERS]:
        entry = as_dict(layer)
        digest = as_str(entry.get("digest"))
        size = entry.get("size")
        encoded = as_str(as_dict(entry.get("annotations")).get(SIGNATURE_ANNOTATION))
        if (
            entry.get("mediaType") != SIMPLE_SIGNING_MEDIA_TYPE
            or not digest
            or not isinstance(size, int)
            or isinstance(size, bool)
            or not 0 < size <= MAX_PAYLOAD_BYTES  # skipped, not a registry error to fail open on
            or not encoded
        ):
            continue
        try:
            parse_digest(digest, "signature layer")
            signature = base64.b64decode(encoded, validate=True)
        except (ImageError, binascii.Error, ValueError):
            continue
        found.append((Descriptor(SIMPLE_SIGNING_MEDIA_TYPE, digest, size), signature))
    return found


def _signed_digest(payload: bytes) -> str | None:
    """The image digest a simple-signing payload vouches for, or None if it is not one."""
    try:
        document = json.loads(payload)
    except ValueError:
        return None
    critical = as_dict(as_dict(document).get("critical"))
    if critical.get("type") != SIGNATURE_TYPE:
        return None
    return as_str(as_dict(critical.get("image")).get("docker-manifest-digest")) or None
