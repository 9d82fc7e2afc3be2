"""Images and cosign signatures pushed to a real registry, laid out as `cosign sign` does:
a simple-signing payload blob, its base64 signature in the layer annotation
`dev.cosignproject.cosign/signature`, in a manifest tagged `sha256-HEX.sig`."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from images.builders import OCI_CONFIG, OCI_MANIFEST, Blobs, file, layer_tar, sha256
from images.registry_server import Registry

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


def new_key(kind: str = "ecdsa") -> PrivateKey:
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def sign(key: PrivateKey, payload: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(payload, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(payload)
    return key.sign(payload, padding.PKCS1v15(), hashes.SHA256())


def payload_for(repository: str, digest: str) -> bytes:
    """The simple-signing payload cosign signs for `repository@digest`."""
    document = {
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def push_image(registry: Registry, repository: str, tag: str, content: str) -> str:
    """Pushes a one-layer image; returns its manifest digest."""
    blobs = Blobs()
    top = blobs.image([layer_tar(file("app/version", content))])
    registry.push(repository, blobs, tag, top)
    return str(top["digest"])


def push_signatures(
    registry: Registry, repository: str, digest: str, layers: list[dict[str, Any]]
) -> None:
    """Publishes the `.sig` manifest of `digest`; each layer is {payload, signature}
    (signature: raw bytes, base64-encoded here) and optionally mediaType/annotation."""
    blobs = Blobs()
    descriptors = []
    for layer in layers:
        annotations = {}
        if layer.get("signature") is not None:
            signature = layer["signature"]
            annotations[SIGNATURE_ANNOTATION] = (
                signature if isinstance(signature, str) else base64.b64encode(signature).decode()
            )
        descriptors.append(
            blobs.add(
                layer["payload"],
                layer.get("mediaType", SIMPLE_SIGNING),
                annotations=annotations,
            )
        )
    config = {
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256(la["payload"]) for la in layers]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": blobs.add(json.dumps(config).encode(), OCI_CONFIG),
        "layers": descriptors,
    }
    top = blobs.add(json.dumps(manifest).encode(), OCI_MANIFEST)
    algorithm, hex_value = digest.split(":", 1)
    registry.push(repository, blobs, f"{algorithm}-{hex_value}.sig", top)


def cosign_sign(registry: Registry, repository: str, digest: str, key: PrivateKey) -> None:
    """What `cosign sign --key KEY REGISTRY/REPOSITORY@DIGEST` publishes."""
    payload = payload_for(f"{registry.host}/{repository}", digest)
    push_signatures(
        registry, repository, digest, [{"payload": payload, "signature": sign(key, payload)}]
    )
