"""Keyless Sigstore signing, played out in the test: a Fulcio-like CA (root and
intermediate) issuing ten-minute code-signing certificates with Fulcio's identity
extensions, a Rekor-like transparency log (entry bodies, signed entry timestamps, a Merkle
tree, inclusion proofs and signed checkpoints), and the TrustedRoot JSON naming both.

The Merkle tree follows RFC 6962's recursive definitions (MTH and PATH), written here from
the RFC rather than imported, so kubeproof's iterative proof check is tested against an
independent construction. The checkpoint is a signed note as the transparency-dev
checkpoint spec lays it out: origin, tree size, base64 root hash, a blank line, then
`— NAME BASE64(KEY HINT ‖ SIGNATURE)`."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from admission.bundling import BUNDLE_V03, IN_TOTO, dsse_pae, statement

ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
SCT_LIST = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
GITHUB = "https://token.actions.githubusercontent.com"
WORKFLOW = "https://github.com/example/app/.github/workflows/release.yml@refs/heads/main"
EPOCH = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # when the test's signing happens


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def spki(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def utf8_string(text: str) -> bytes:
    """DER UTF8String (short or long length form)."""
    data = text.encode()
    if len(data) < 0x80:
        return bytes([0x0C, len(data)]) + data
    size = len(data).to_bytes((len(data).bit_length() + 7) // 8, "big")
    return bytes([0x0C, 0x80 | len(size)]) + size + data


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigstore.test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def _ca_certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer_name: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(EPOCH - timedelta(days=365))
        .not_valid_after(EPOCH + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(issuer_key, hashes.SHA384())
    )


class Fulcio:
    """A root CA and an intermediate that issues the signing certificates."""

    def __init__(self, name: str = "fulcio") -> None:
        self.ct_key = ec.generate_private_key(ec.SECP256R1())  # its certificate transparency log
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.root = _ca_certificate(
            f"{name}-root", self.root_key, _name(f"{name}-root"), self.root_key
        )
        self.key = ec.generate_private_key(ec.SECP384R1())
        self.intermediate = _ca_certificate(
            f"{name}-intermediate", self.key, self.root.subject, self.root_key
        )

    def issue(
        self,
        key: ec.EllipticCurvePrivateKey,
        subject: str = WORKFLOW,
        issuer: str = GITHUB,
        at: datetime = EPOCH,
        code_signing: bool = True,
        legacy_issuer: bool = False,
        ct_key: ec.EllipticCurvePrivateKey | bool = True,
        forged_sct: bool = False,
    ) -> x509.Certificate:
        """A ten-minute certificate as Fulcio issues it: no subject name, the identity in
        the SAN (an e-mail address, or a URI), the OIDC issuer in Fulcio's extension, and
        a signed certificate timestamp by the CA's CT log (`ct_key` True), by another key,
        or none (False); `forged_sct` has it name the CA's CT log whoever signed it."""
        names: list[x509.GeneralName] = (
            [x509.RFC822Name(subject)]
            if "@" in subject and "://" not in subject
            else [x509.UniformResourceIdentifier(subject)]
        )
        usage = [
            ExtendedKeyUsageOID.CODE_SIGNING if code_signing else ExtendedKeyUsageOID.SERVER_AUTH
        ]
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(at)
            .not_valid_after(at + timedelta(minutes=10))
            .add_extension(x509.SubjectAlternativeName(names), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
        )
        if legacy_issuer:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(ISSUER_V1, issuer.encode()), critical=False
            )
        else:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(ISSUER_V2, utf8_string(issuer)), critical=False
            )
        if ct_key is False:
            return builder.sign(self.key, hashes.SHA256())
        logger = self.ct_key if ct_key is True else ct_key
        precertificate = builder.sign(self.key, hashes.SHA256())
        timestamps = signed_certificate_timestamps(
            logger,
            precertificate.tbs_certificate_bytes,
            self.intermediate,
            at,
            self.ct_key if forged_sct else logger,
        )
        builder = builder.add_extension(
            x509.UnrecognizedExtension(SCT_LIST, timestamps), critical=False
        )
        return builder.sign(self.key, hashes.SHA256())

    def ct_log(self) -> dict[str, Any]:
        return {
            "baseUrl": "https://ctfe.test",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": b64(spki(self.ct_key.public_key())),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": {"start": "2025-01-01T00:00:00Z"},
            },
            "logId": {"keyId": b64(hashlib.sha256(spki(self.ct_key.public_key())).digest())},
        }

    def authority(self) -> dict[str, Any]:
        return {
            "subject": {"organization": "sigstore.test", "commonName": "fulcio"},
            "uri": "https://fulcio.test",
            "certChain": {
                "certificates": [{"rawBytes": b64(der(c))} for c in (self.intermediate, self.root)]
            },
            "validFor": {"start": "2025-01-01T00:00:00Z"},
        }


def signed_certificate_timestamps(
    log_key: ec.EllipticCurvePrivateKey,
    tbs: bytes,
    issuer: x509.Certificate,
    at: datetime,
    named: ec.EllipticCurvePrivateKey,
) -> bytes:
    """The SCT list extension's value (a DER OCTET STRING of the TLS-encoded list) holding
    one v1 SCT for the precertificate `tbs` (RFC 6962, 3.2 and 3.3), signed with
    `log_key`, naming the log of `named`."""
    log_id = hashlib.sha256(spki(named.public_key())).digest()
    millis = int(at.timestamp() * 1000).to_bytes(8, "big")
    issuer_hash = hashlib.sha256(spki(issuer.public_key())).digest()
    signed = (
        b"\x00\x00"
        + millis
        + b"\x00\x01"
        + issuer_hash
        + len(tbs).to_bytes(3, "big")
        + tbs
        + b"\x00\x00"
    )
    signature = log_key.sign(signed, ec.ECDSA(hashes.SHA256()))
    sct = (
        b"\x00"
        + log_id
        + millis
        + b"\x00\x00"
        + b"\x04\x03"
        + len(signature).to_bytes(2, "big")
        + signature
    )
    listed = len(sct).to_bytes(2, "big") + sct
    payload = len(listed).to_bytes(2, "big") + listed
    return b"\x04" + _der_length(len(payload)) + payload


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(size)]) + size


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (RFC 6962, 2.1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def tree_hash(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962, 2.1."""
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = _split(len(leaves))
    return _node(tree_hash(leaves[:k]), tree_hash(leaves[k:]))


def audit_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962, 2.1.1."""
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return [*audit_path(m, leaves[:k]), tree_hash(leaves[k:])]
    return [*audit_path(m - k, leaves[k:]), tree_hash(leaves[:k])]


@dataclass
class Rekor:
    """A transparency log with its own key; `entries` are the canonicalized bodies."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    origin: str = "rekor.test - 2605736670972794746"
    entries: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        for i in range(5):  # others' entries: the tree is more than our one leaf
            self.entries.append(json.dumps({"kind": "other", "n": i}).encode())

    @property
    def key_id(self) -> bytes:
        return hashlib.sha256(spki(self.key.public_key())).digest()

    def checkpoint(
        self, size: int, root: bytes, signer: ec.EllipticCurvePrivateKey | None = None
    ) -> str:
        body = f"{self.origin}\n{size}\n{b64(root)}\n"
        signing = signer or self.key
        hint = hashlib.sha256(spki(signing.public_key())).digest()[:4]
        signature = signing.sign(body.encode(), ec.ECDSA(hashes.SHA256()))
        return f"{body}\n\u2014 rekor.test {b64(hint + signature)}\n"

    def signed_entry_timestamp(self, body: bytes, integrated: int, index: int) -> bytes:
        """Rekor's SET: over the RFC 8785 JSON of body, integratedTime, logID, logIndex."""
        document = {
            "body": b64(body),
            "integratedTime": integrated,
            "logID": self.key_id.hex(),
            "logIndex": index,
        }
        text = json.dumps(document, sort_keys=True, separators=(",", ":"))
        return self.key.sign(text.encode(), ec.ECDSA(hashes.SHA256()))

    def log(self, body: bytes, integrated: int, kind: str) -> dict[str, Any]:
        """Appends `body`, then a few more entries, and returns the bundle's tlog entry."""
        index = len(self.entries)
        self.entries.append(body)
        for i in range(3):
            self.entries.append(json.dumps({"kind": "later", "n": index + i}).encode())
        size = len(self.entries)
        root = tree_hash(self.entries)
        return {
            "logIndex": str(index),
            "logId": {"keyId": b64(self.key_id)},
            "kindVersion": {"kind": kind, "version": "0.0.1"},
            "integratedTime": str(integrated),
            "inclusionPromise": {
                "signedEntryTimestamp": b64(self.signed_entry_timestamp(body, integrated, index))
            },
            "inclusionProof": {
                "logIndex": str(index),
                "rootHash": b64(root),
                "treeSize": str(size),
                "hashes": [b64(h) for h in audit_path(index, self.entries)],
                "checkpoint": {"envelope": self.checkpoint(size, root)},
            },
            "canonicalizedBody": b64(body),
        }

    def transparency_log(self) -> dict[str, Any]:
        return {
            "baseUrl": "https://rekor.test",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": b64(spki(self.key.public_key())),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": {"start": "2025-01-01T00:00:00Z"},
            },
            "logId": {"keyId": b64(self.key_id)},
        }


def trusted_root(fulcio: Fulcio, rekor: Rekor) -> dict[str, Any]:
    return {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [rekor.transparency_log()],
        "certificateAuthorities": [fulcio.authority()],
        "ctlogs": [fulcio.ct_log()],
        "timestampAuthorities": [],
    }


def _pem_b64(certificate: x509.Certificate) -> str:
    return b64(certificate.public_bytes(serialization.Encoding.PEM))


def dsse_body(payload: bytes, signature: bytes, certificate: x509.Certificate) -> bytes:
    """A Rekor `dsse` v0.0.1 entry body."""
    return json.dumps(
        {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(payload).hexdigest(),
                },
                "signatures": [{"signature": b64(signature), "verifier": _pem_b64(certificate)}],
            },
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def hashedrekord_body(digest_hex: str, signature: bytes, certificate: x509.Certificate) -> bytes:
    """A Rekor `hashedrekord` v0.0.1 entry body."""
    return json.dumps(
        {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": digest_hex}},
                "signature": {
                    "content": b64(signature),
                    "publicKey": {"content": _pem_b64(certificate)},
                },
            },
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


@dataclass
class Signing:
    """One keyless signature: the signer's key and certificate, when it was logged."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    integrated: int


def signing(fulcio: Fulcio, **issue: Any) -> Signing:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = fulcio.issue(key, **issue)
    integrated = int(certificate.not_valid_before_utc.timestamp()) + 60
    return Signing(key, certificate, integrated)


def keyless_dsse_bundle(
    rekor: Rekor,
    signer: Signing,
    digest: str,
    body_digest: str | None = None,
    body_signer: Signing | None = None,
) -> dict[str, Any]:
    """`cosign sign --new-bundle-format` without a key: an in-toto statement about
    `digest`, signed, logged (the log entry's statement is about `body_digest`, and its
    signature and certificate are `body_signer`'s, when given)."""
    payload = statement(digest)
    signature = signer.key.sign(dsse_pae(IN_TOTO, payload), ec.ECDSA(hashes.SHA256()))
    logged = payload if body_digest is None else statement(body_digest)
    logger = body_signer or signer
    logged_signature = (
        signature
        if body_signer is None
        else body_signer.key.sign(dsse_pae(IN_TOTO, payload), ec.ECDSA(hashes.SHA256()))
    )
    body = dsse_body(logged, logged_signature, logger.certificate)
    return {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {
            "certificate": {"rawBytes": b64(der(signer.certificate))},
            "tlogEntries": [rekor.log(body, signer.integrated, "dsse")],
        },
        "dsseEnvelope": {
            "payload": b64(payload),
            "payloadType": IN_TOTO,
            "signatures": [{"sig": b64(signature), "keyid": ""}],
        },
    }


def keyless_message_bundle(
    rekor: Rekor,
    signer: Signing,
    manifest: bytes,
    logged_digest: str | None = None,
    body_signer: Signing | None = None,
) -> dict[str, Any]:
    """A message signature over the image manifest, with a `hashedrekord` log entry (for
    `logged_digest`, hex, and by `body_signer`, when given) and the certificate as a v0.1
    chain."""
    hashed = hashlib.sha256(manifest).digest()
    signature = signer.key.sign(manifest, ec.ECDSA(hashes.SHA256()))
    logger = body_signer or signer
    logged_signature = logger.key.sign(manifest, ec.ECDSA(hashes.SHA256()))
    if body_signer is None:
        logged_signature = signature
    body = hashedrekord_body(logged_digest or hashed.hex(), logged_signature, logger.certificate)
    return {
        "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "verificationMaterial": {
            "x509CertificateChain": {"certificates": [{"rawBytes": b64(der(signer.certificate))}]},
            "tlogEntries": [rekor.log(body, signer.integrated, "hashedrekord")],
        },
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": b64(hashed)},
            "signature": b64(signature),
        },
    }
