"""Sigstore bundles attached to an image, verified offline with the policy's public keys.

A bundle (protobuf-specs JSON) is found as an OCI 1.1 referrer of the image digest: an
artifact manifest whose `subject` is the image and whose one layer is the bundle. The
referrers API (`GET /v2/NAME/referrers/DIGEST`) lists them; a registry without it answers
404 and the referrers tag schema is read instead (tag `sha256-HEX`, an image index).

Two kinds of content count as a signature of the image:
- `messageSignature`: a signature over the image manifest itself, whose `messageDigest`
  must be the hash of the manifest being admitted;
- `dsseEnvelope`: an in-toto statement, signed over its DSSE pre-authentication encoding,
  that names the admitted digest among its subjects.

Keyless bundles (a Fulcio certificate, Rekor entries) are parsed here and verified by
`kubeproof.admission.keyless` against the trusted root a policy rule names; without one
they are reported as not verifiable, which counts as unsigned. Transparency-log entries
in key-based bundles are not checked: the key is the policy's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from kubeproof.images.digest import parse_digest
from kubeproof.images.errors import ImageError
from kubeproof.images.manifest import Descriptor
from kubeproof.images.registry import RegistryClient, RegistryError
from kubeproof.inventory.objects import as_dict, as_list, as_str

BUNDLE_MEDIA_TYPES = frozenset(
    {
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
        "application/vnd.dev.sigstore.bundle.v0.3+json",
    }
)
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPES = frozenset(
    {"https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"}
)
MAX_BUNDLE_BYTES = 256 * 1024
MAX_BUNDLES = 16  # referrers read per image: more is an attack on the webhook's time
MAX_DSSE_SIGNATURES = 8
HASH_OF_CURVE: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}
_HASHES: dict[str, tuple[str, Callable[[], hashes.HashAlgorithm]]] = {
    "SHA2_256": ("sha256", hashes.SHA256),
    "SHA2_384": ("sha384", hashes.SHA384),
    "SHA2_512": ("sha512", hashes.SHA512),
}

PublicKey = ec.EllipticCurvePublicKey | Ed25519PublicKey | rsa.RSAPublicKey


def key_verifies(key: PublicKey, signature: bytes, payload: bytes) -> bool:
    """Whether `key` signed `payload` as cosign signs: ECDSA with its curve's hash,
    Ed25519, or RSA PKCS#1 v1.5 with SHA-256."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            algorithm = HASH_OF_CURVE.get(key.curve.name)
            if algorithm is None:
                return False
            key.verify(signature, payload, ec.ECDSA(algorithm()))
        elif isinstance(key, Ed25519PublicKey):
            key.verify(signature, payload)
        else:
            key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


class TrustedKey(Protocol):
    """What a policy key offers (signatures.PolicyKey)."""

    @property
    def key(self) -> PublicKey: ...

    @property
    def fingerprint(self) -> str: ...

    def verifies(self, signature: bytes, payload: bytes) -> bool: ...


class Failure(Enum):
    UNVERIFIABLE = "unverifiable"  # malformed, unknown type, keyless: proves nothing
    UNKNOWN_KEY = "unknown-key"  # no policy key made its signature
    WRONG_DIGEST = "wrong-digest"  # a policy key signed it, for another image


class BundleProblem(Exception):
    """A bundle does not vouch for the image; the message says why, never key material."""

    def __init__(self, failure: Failure, message: str) -> None:
        super().__init__(message)
        self.failure = failure


@dataclass(frozen=True)
class MessageSignature:
    algorithm: str  # SHA2_256, SHA2_384 or SHA2_512
    digest: bytes
    signature: bytes


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[bytes, ...]


@dataclass(frozen=True)
class Bundle:
    media_type: str
    key_hint: str | None
    content: MessageSignature | Envelope
    certificate: bytes | None = None  # a keyless bundle's leaf certificate (DER)
    tlog_entries: tuple[Any, ...] = ()  # as found: kubeproof.admission.keyless reads them


# -- parsing ------------------------------------------------------------------------------


def parse_bundle(data: bytes) -> Bundle:
    """A bundle, or BundleProblem (UNVERIFIABLE) saying what is wrong with it."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise _unverifiable("not JSON") from None
    if not isinstance(document, dict):
        raise _unverifiable("not a JSON object")
    media_type = document.get("mediaType")
    if not is_bundle_type(media_type):
        raise _unverifiable(f"unknown bundle media type {shown(media_type)}")
    material = _object(document.get("verificationMaterial"), "verificationMaterial")
    certificate = _leaf_certificate(material)
    hint: str | None = None
    if certificate is None:
        if "publicKey" not in material:
            raise _unverifiable("verificationMaterial names no public key or certificate")
        hint = as_str(_object(material["publicKey"], "verificationMaterial.publicKey").get("hint"))
    has_message, has_envelope = "messageSignature" in document, "dsseEnvelope" in document
    if has_message == has_envelope:
        raise _unverifiable("needs exactly one of messageSignature and dsseEnvelope")
    content: MessageSignature | Envelope
    if has_message:
        content = _message_signature(_object(document["messageSignature"], "messageSignature"))
    else:
        content = _envelope(_object(document["dsseEnvelope"], "dsseEnvelope"))
    entries = tuple(as_list(material.get("tlogEntries")))
    return Bundle(str(media_type), hint or None, content, certificate, entries)


def _leaf_certificate(material: dict[str, Any]) -> bytes | None:
    """The signing certificate: `certificate` (v0.3) or the first of
    `x509CertificateChain` (the rest of a chain is not trusted: the trusted root's is)."""
    if "certificate" in material:
        value = _object(material["certificate"], "verificationMaterial.certificate")
        return _base64(value.get("rawBytes"), "verificationMaterial.certificate.rawBytes")
    if "x509CertificateChain" in material:
        where = "verificationMaterial.x509CertificateChain"
        chain = as_list(_object(material["x509CertificateChain"], where).get("certificates"))
        if not chain:
            raise _unverifiable(f"{where}.certificates is empty")
        raw = as_dict(chain[0]).get("rawBytes")
        return _base64(raw, f"{where}.certificates[0].rawBytes")
    return None


def _message_signature(value: dict[str, Any]) -> MessageSignature:
    digest = _object(value.get("messageDigest"), "messageSignature.messageDigest")
    algorithm = digest.get("algorithm")
    if not isinstance(algorithm, str) or algorithm not in _HASHES:
        raise _unverifiable(
            f"messageSignature.messageDigest.algorithm {shown(algorithm)} is not "
            f"one of {', '.join(_HASHES)}"
        )
    return MessageSignature(
        str(algorithm),
        _base64(digest.get("digest"), "messageSignature.messageDigest.digest"),
        _base64(value.get("signature"), "messageSignature.signature"),
    )


def _envelope(value: dict[str, Any]) -> Envelope:
    payload_type = value.get("payloadType")
    if not isinstance(payload_type, str):
        raise _unverifiable("dsseEnvelope.payloadType is missing")
    signatures = as_list(value.get("signatures"))
    if not signatures:
        raise _unverifiable("dsseEnvelope has no signatures")
    return Envelope(
        payload_type,
        _base64(value.get("payload"), "dsseEnvelope.payload"),
        tuple(
            _base64(as_dict(entry).get("sig"), f"dsseEnvelope.signatures[{i}].sig")
            for i, entry in enumerate(signatures[:MAX_DSSE_SIGNATURES])
        ),
    )


def is_bundle_type(value: Any) -> bool:
    return isinstance(value, str) and value in BUNDLE_MEDIA_TYPES


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _unverifiable(f"{where} is not an object")
    return value


def _base64(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise _unverifiable(f"{where} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _unverifiable(f"{where} is not base64") from None


def shown(value: Any) -> str:
    """An attacker-chosen value, short enough to quote in a message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _unverifiable(reason: str) -> BundleProblem:
    return BundleProblem(Failure.UNVERIFIABLE, reason)


# -- verification -------------------------------------------------------------------------


def pae(payload_type: str, payload: bytes) -> bytes:
    """The DSSE v1 pre-authentication encoding: what the envelope's signatures sign."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def verify_bundle(
    bundle: Bundle,
    digest: str,
    keys: tuple[TrustedKey, ...],
    manifest: Callable[[], bytes],
) -> TrustedKey:
    """The policy key that signed `bundle` for image `digest`, or BundleProblem.
    `manifest` gives the image manifest's bytes (checked against `digest` by the caller)."""
    if bundle.certificate is not None:
        raise _unverifiable(
            "keyless bundle without trusted root (a certificate, and the rule sets no keyless)"
        )
    return verify_content(bundle.content, digest, keys_for_hint(bundle.key_hint, keys), manifest)


def verify_content(
    content: MessageSignature | Envelope,
    digest: str,
    keys: tuple[TrustedKey, ...],
    manifest: Callable[[], bytes],
) -> TrustedKey:
    """The key of `keys` whose signature `content` carries, for image `digest`."""
    if isinstance(content, MessageSignature):
        return _verify_message(content, digest, keys, manifest)
    return _verify_envelope(content, digest, keys)


def keys_for_hint(hint: str | None, keys: tuple[TrustedKey, ...]) -> tuple[TrustedKey, ...]:
    """The policy key a hint names, first. A hint is not signed, so it only orders the
    search; a hint naming no policy key (a KMS key id, say) leaves every key to try."""
    if hint is None:
        return keys
    named = tuple(key for key in keys if hint in _hint_forms(key))
    return named + tuple(key for key in keys if key not in named)


def _hint_forms(key: TrustedKey) -> set[str]:
    der = key.key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hashed = hashlib.sha256(der).digest()
    return {key.fingerprint, hashed.hex(), base64.b64encode(hashed).decode()}


def _verify_message(
    content: MessageSignature,
    digest: str,
    keys: tuple[TrustedKey, ...],
    manifest: Callable[[], bytes],
) -> TrustedKey:
    name, algorithm = _HASHES[content.algorithm]
    artifact = manifest()
    if hashlib.new(name, artifact).digest() == content.digest:
        for key in keys:
            if key.verifies(content.signature, artifact):
                return key
        raise BundleProblem(
            Failure.UNKNOWN_KEY, "messageSignature verifies with none of the policy keys"
        )
    claimed = f"{name}:{content.digest.hex()}"
    signature, hashed = content.signature, content.digest
    if any(_verifies_prehashed(key.key, signature, hashed, algorithm) for key in keys):
        raise BundleProblem(Failure.WRONG_DIGEST, claimed)
    raise BundleProblem(
        Failure.UNKNOWN_KEY,
        f"messageSignature is over {claimed}, not {digest}, and by none of the policy keys",
    )


def _verifies_prehashed(
    key: PublicKey, signature: bytes, digest: bytes, algorithm: Callable[[], hashes.HashAlgorithm]
) -> bool:
    """Whether `key` signed a message whose hash is `digest` (Ed25519 cannot tell)."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest, ec.ECDSA(Prehashed(algorithm())))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest, padding.PKCS1v15(), Prehashed(algorithm()))
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def _verify_envelope(envelope: Envelope, digest: str, keys: tuple[TrustedKey, ...]) -> TrustedKey:
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise _unverifiable(
            f"dsseEnvelope.payloadType {shown(envelope.payload_type)} is not {IN_TOTO_PAYLOAD_TYPE}"
        )
    signed = pae(envelope.payload_type, envelope.payload)
    signer = next(
        (key for key in keys for sig in envelope.signatures if key.verifies(sig, signed)), None
    )
    if signer is None:
        raise BundleProblem(
            Failure.UNKNOWN_KEY,
            "dsseEnvelope verifies with none of the policy keys (another signer, or a "
            "payload changed after signing)",
        )
    subjects = statement_subjects(envelope.payload)
    if digest in subjects:
        return signer
    raise BundleProblem(
        Failure.WRONG_DIGEST, ", ".join(subjects[:3]) or "an in-toto statement with no subject"
    )


def statement_subjects(payload: bytes) -> list[str]:
    """The `ALGORITHM:HEX` digests an in-toto statement is about."""
    try:
        statement = json.loads(payload)
    except (ValueError, RecursionError):
        raise _unverifiable("the signed DSSE payload is not JSON") from None
    if as_str(as_dict(statement).get("_type")) not in STATEMENT_TYPES:
        raise _unverifiable("the signed DSSE payload is not an in-toto statement")
    found = []
    for subject in as_list(as_dict(statement).get("subject")):
        for algorithm, value in as_dict(as_dict(subject).get("digest")).items():
            if isinstance(value, str):
                found.append(f"{algorithm}:{value.lower()}")
    return found


# -- discovery ----------------------------------------------------------------------------


def referrers_tag(digest: str) -> str:
    """The referrers tag schema's tag for `digest`: `sha256-HEX`."""
    algorithm, hex_value = parse_digest(digest, "image digest")
    return f"{algorithm}-{hex_value}"


def attached_bundles(
    client: RegistryClient,
    repository: str,
    digest: str,
    on_request: Callable[[], None] = lambda: None,
) -> Iterator[bytes]:
    """The bytes of each Sigstore bundle attached to `repository@digest`, at most
    MAX_BUNDLES. RegistryError for a registry that fails (not for one that has none).
    `on_request` is called before each registry request (the verifier counts them)."""
    index = _referrers_index(client, repository, digest, on_request)
    listed = [as_dict(entry) for entry in as_list(as_dict(index).get("manifests"))]
    bundles = [entry for entry in listed if is_bundle_type(entry.get("artifactType"))]
    for entry in bundles[:MAX_BUNDLES]:
        try:
            reference = parse_digest(as_str(entry.get("digest")) or "", "referrer digest")
            on_request()
            document, _, _ = client.get_manifest(repository, ":".join(reference))
            layer = _bundle_layer(document, digest)
            if layer is not None:
                on_request()
                yield client.read_blob(repository, layer, MAX_BUNDLE_BYTES)
        except RegistryError as error:
            if not _is_not_found(error):
                raise
        except ImageError:
            continue  # a corrupt referrer proves nothing; another may


def _referrers_index(
    client: RegistryClient, repository: str, digest: str, on_request: Callable[[], None]
) -> Any:
    try:
        on_request()
        document = client.get_referrers(repository, digest)
    except RegistryError as error:
        if not _lacks_referrers_api(error):
            raise
        try:
            on_request()
            document, _, _ = client.get_manifest(repository, referrers_tag(digest))
        except RegistryError as fallback_error:
            if _is_not_found(fallback_error):
                return {}
            raise
        except ImageError:
            return {}
    try:
        return json.loads(document)
    except (ValueError, RecursionError):
        return {}


def _bundle_layer(document: bytes, digest: str) -> Descriptor | None:
    """The bundle layer of a referrer manifest that is about `digest`: the tag schema's
    index can be pushed by anyone, so the manifest's own subject must name the image."""
    try:
        manifest = as_dict(json.loads(document))
    except (ValueError, RecursionError):
        return None
    if as_dict(manifest.get("subject")).get("digest") != digest:
        return None
    for layer in as_list(manifest.get("layers")):
        entry = as_dict(layer)
        media_type, blob, size = entry.get("mediaType"), entry.get("digest"), entry.get("size")
        if (
            is_bundle_type(media_type)
            and isinstance(blob, str)
            and _is_digest(blob)  # it becomes part of a URL
            and isinstance(size, int)
            and not isinstance(size, bool)
            and 0 < size <= MAX_BUNDLE_BYTES
        ):
            return Descriptor(str(media_type), blob, size)
    return None


def _is_digest(text: str) -> bool:
    try:
        parse_digest(text, "bundle layer")
    except ImageError:
        return False
    return True


def _lacks_referrers_api(error: RegistryError) -> bool:
    """404 is what the OCI spec has a registry without the API answer; some answer 400,
    405 or 501 to a path they do not know. Those fall back to the referrers tag rather
    than count as a registry error, which fail-open would turn into admitting the image."""
    return _is_not_found(error) or any(
        f": HTTP {status} " in str(error) for status in (400, 405, 406, 501)
    )


def _is_not_found(error: RegistryError) -> bool:
    # RegistryClient reports a status only in its message ("registry R: 404 ... not found").
    return ": 404 " in str(error)
