"""Sigstore bundles (protobuf-specs JSON) built from keys generated in the tests, and
attached to an image in a real registry as OCI 1.1 referrers: an artifact manifest whose
`subject` is the image, listed in the referrers tag (`sha256-HEX`, an image index), the
schema a registry without the referrers API is read by.

The DSSE pre-authentication encoding is written out here from the DSSE spec rather than
imported, so a mistake in kubeproof's cannot make both sides agree."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from admission.cosign import PrivateKey, sign
from images.builders import OCI_INDEX, OCI_MANIFEST, sha256
from images.registry_server import Registry

BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_V02 = "application/vnd.dev.sigstore.bundle+json;version=0.2"
IN_TOTO = "application/vnd.in-toto+json"
EMPTY = "application/vnd.oci.empty.v1+json"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def key_hint(key: PrivateKey) -> str:
    """A public key hint: base64 of the SHA-256 of the DER key."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b64(hashlib.sha256(der).digest())


def dsse_pae(payload_type: str, payload: bytes) -> bytes:
    """DSSEv1 SP LEN(type) SP type SP LEN(body) SP body, lengths in ASCII decimal."""
    kind = payload_type.encode()
    return b" ".join(
        [b"DSSEv1", str(len(kind)).encode(), kind, str(len(payload)).encode(), payload]
    )


def statement(digest: str, name: str = "image") -> bytes:
    algorithm, hex_value = digest.split(":", 1)
    document = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {algorithm: hex_value}}],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    }
    return json.dumps(document).encode()


def public_key_material(key: PrivateKey) -> dict[str, Any]:
    return {"publicKey": {"hint": key_hint(key)}, "tlogEntries": []}


def dsse_bundle(
    key: PrivateKey,
    payload: bytes,
    payload_type: str = IN_TOTO,
    media_type: str = BUNDLE_V03,
) -> dict[str, Any]:
    signature = sign(key, dsse_pae(payload_type, payload))
    return {
        "mediaType": media_type,
        "verificationMaterial": public_key_material(key),
        "dsseEnvelope": {
            "payload": b64(payload),
            "payloadType": payload_type,
            "signatures": [{"sig": b64(signature), "keyid": ""}],
        },
    }


def message_bundle(
    key: PrivateKey, artifact: bytes, media_type: str = BUNDLE_V03
) -> dict[str, Any]:
    return {
        "mediaType": media_type,
        "verificationMaterial": public_key_material(key),
        "messageSignature": {
            "messageDigest": {
                "algorithm": "SHA2_256",
                "digest": b64(hashlib.sha256(artifact).digest()),
            },
            "signature": b64(sign(key, artifact)),
        },
    }


def keyless_bundle(key: ec.EllipticCurvePrivateKey, digest: str) -> dict[str, Any]:
    """A bundle as `cosign sign` without a key makes it: a short-lived certificate (here
    self-issued, as no Fulcio runs in a test) and a transparency log entry."""
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigstore.dev")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(minutes=10))
        .sign(key, hashes.SHA256())
    )
    bundle = dsse_bundle(key, statement(digest))
    bundle["verificationMaterial"] = {
        "certificate": {"rawBytes": b64(certificate.public_bytes(serialization.Encoding.DER))},
        "tlogEntries": [
            {
                "logIndex": "1",
                "logId": {"keyId": b64(b"\0" * 32)},
                "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                "integratedTime": str(int(now.timestamp())),
            }
        ],
    }
    return bundle


def image_manifest(registry: Registry, repository: str, digest: str) -> bytes:
    status, _, body = registry.request(
        "GET", f"/v2/{repository}/manifests/{digest}", headers={"Accept": OCI_MANIFEST}
    )
    assert status == 200, (status, body)
    return body


def attach(
    registry: Registry,
    repository: str,
    digest: str,
    bundle: dict[str, Any] | bytes,
    artifact_type: str = BUNDLE_V03,
    subject: str | None = None,
) -> str:
    """Pushes `bundle` as a referrer of `repository@digest` (its manifest's subject is
    `subject`, by default the image) and lists it in the referrers tag; returns the
    referrer manifest's digest."""
    data = bundle if isinstance(bundle, bytes) else json.dumps(bundle).encode()
    image = image_manifest(registry, repository, subject or digest)
    registry.push_blob(repository, b"{}", sha256(b"{}"))
    registry.push_blob(repository, data, sha256(data))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY, "digest": sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": artifact_type, "digest": sha256(data), "size": len(data)}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject or digest, "size": len(image)},
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope"},
    }
    document = json.dumps(manifest).encode()
    referrer = sha256(document)
    _put_manifest(registry, repository, referrer, document, OCI_MANIFEST)
    tag = digest.replace(":", "-")
    status, _, body = registry.request(
        "GET", f"/v2/{repository}/manifests/{tag}", headers={"Accept": OCI_INDEX}
    )
    index: dict[str, Any] = (
        json.loads(body)
        if status == 200
        else {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    )
    index["manifests"].append(
        {
            "mediaType": OCI_MANIFEST,
            "digest": referrer,
            "size": len(document),
            "artifactType": artifact_type,
        }
    )
    _put_manifest(registry, repository, tag, json.dumps(index).encode(), OCI_INDEX)
    return referrer


def _put_manifest(
    registry: Registry, repository: str, reference: str, data: bytes, media_type: str
) -> None:
    status, _, body = registry.request(
        "PUT", f"/v2/{repository}/manifests/{reference}", data, {"Content-Type": media_type}
    )
    assert status == 201, (status, body)
