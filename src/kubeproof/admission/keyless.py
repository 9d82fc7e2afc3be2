"""Keyless Sigstore bundles, verified offline against a trusted root the policy names.

`cosign sign` without a key signs with a short-lived key whose certificate a Fulcio CA
issues to an OIDC identity, and records the signature in the Rekor transparency log. A
keyless bundle carries that certificate and the log entry. It vouches for an image when:

- the certificate chains to a certificate authority of the trusted root (a
  `dev.sigstore.trustedroot.v1.TrustedRoot` JSON file), is a code-signing certificate, and
  its identity (e-mail or URI SAN, Fulcio issuer extension) is one the policy names;
- the log entry is from a log of the trusted root: its signed entry timestamp (the
  `inclusionPromise`) verifies with the log's key, and so does its inclusion proof when
  present (checkpoint signed by the log, Merkle path to the checkpoint's root);
- the certificate was valid at the entry's integrated time, which only the signed entry
  timestamp vouches for: a bundle without one cannot show when it was signed;
- the bundle's signature verifies with the certificate's key (the checks of key-based
  bundles, `kubeproof.admission.bundles`), and the log entry's body is about that same
  signature, certificate and artifact.

- when the trusted root names CT logs (`ctlogs`), the certificate carries a signed
  certificate timestamp by one of them, over its precertificate (RFC 6962, 3.2).

Not checked: timestamp authorities, and `intoto` log entries (only `hashedrekord` and
`dsse`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID

from kubeproof.admission.bundles import (
    Bundle,
    BundleProblem,
    Envelope,
    Failure,
    MessageSignature,
    PublicKey,
    key_verifies,
    shown,
    verify_content,
)
from kubeproof.admission.trustroot import (
    CertificateAuthority,
    KeylessTrust,
    TransparencyLog,
    TrustedRoot,
)

FULCIO_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")  # raw UTF-8, deprecated
FULCIO_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")  # DER UTF8String
MAX_TLOG_ENTRIES = 4
MAX_PROOF_HASHES = 64  # a tree of 2**64 entries needs no more


# -- certificates -------------------------------------------------------------------------


def der_utf8_string(data: bytes) -> str | None:
    """The text of a DER UTF8String, or None when `data` is not exactly one."""
    if len(data) < 2 or data[0] != 0x0C:
        return None
    length, offset = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or len(data) < 2 + count:
            return None
        length, offset = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
        if length < 0x80 or data[2] == 0:  # DER: the shortest length form only
            return None
    if len(data) != offset + length:
        return None
    try:
        return data[offset:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def fulcio_issuer(certificate: x509.Certificate) -> str | None:
    """The OIDC issuer Fulcio wrote in the certificate: the DER extension, else the older
    raw one. None when there is none or it is malformed."""
    decoders: tuple[tuple[x509.ObjectIdentifier, Callable[[bytes], str | None]], ...] = (
        (FULCIO_ISSUER_V2, der_utf8_string),
        (FULCIO_ISSUER_V1, _raw_utf8),
    )
    for oid, decode in decoders:
        try:
            value = certificate.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        if isinstance(value, x509.UnrecognizedExtension):
            return decode(value.value)
    return None


def _raw_utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8") or None
    except UnicodeDecodeError:
        return None


def certificate_names(certificate: x509.Certificate) -> tuple[str, ...]:
    """The e-mail and URI subject alternative names: Fulcio's subject."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(names.value.get_values_for_type(x509.RFC822Name)) + tuple(
        names.value.get_values_for_type(x509.UniformResourceIdentifier)
    )


def _is_code_signing(certificate: x509.Certificate) -> bool:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.CODE_SIGNING in usage


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        return False


def _valid_at(certificate: x509.Certificate, moment: datetime) -> bool:
    return certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    if certificate.issuer != issuer.subject:
        return False
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def issuer_of(
    leaf: x509.Certificate, authority: CertificateAuthority, moment: datetime
) -> x509.Certificate | None:
    """The certificate of the authority's chain that issued `leaf`, when the path from it
    to the chain's end is of CA certificates, each issued by the next, all valid at
    `moment`."""
    if not authority.valid.holds(moment):
        return None
    chain = authority.chain
    for start, issuer in enumerate(chain):
        if not _issued_by(leaf, issuer):
            continue
        path = chain[start:]
        trusted = all(_is_ca(c) and _valid_at(c, moment) for c in path) and all(
            _issued_by(path[i], path[i + 1]) for i in range(len(path) - 1)
        )
        return issuer if trusted else None
    return None


_UNIX_EPOCH = datetime(1970, 1, 1)  # SCT times are naive UTC


def sct_problem(
    leaf: x509.Certificate, issuer: x509.Certificate, ct_logs: tuple[TransparencyLog, ...]
) -> str | None:
    """Why no signed certificate timestamp of `leaf` verifies with a CT log of the trusted
    root (over the precertificate entry of RFC 6962, 3.2), or None. A root naming no CT
    log asks for none."""
    if not ct_logs:
        return None
    try:
        timestamps = leaf.extensions.get_extension_for_class(
            x509.PrecertificateSignedCertificateTimestamps
        ).value
        tbs = leaf.tbs_precertificate_bytes
    except x509.ExtensionNotFound:
        return "the certificate carries no signed certificate timestamp"
    except ValueError:
        return "the certificate's signed certificate timestamps are malformed"
    issuer_key = issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    issuer_hash = hashlib.sha256(issuer_key).digest()
    for sct in timestamps:
        log = next((log for log in ct_logs if log.key_id == sct.log_id), None)
        if (
            log is None
            or sct.entry_type != x509.certificate_transparency.LogEntryType.PRE_CERTIFICATE
        ):
            continue
        millis = (sct.timestamp - _UNIX_EPOCH) // timedelta(milliseconds=1)
        extensions = sct.extension_bytes
        signed = b"".join(
            (
                b"\0\0",  # version v1, signature type certificate_timestamp
                millis.to_bytes(8, "big"),
                b"\0\1",  # entry type precert_entry
                issuer_hash,
                len(tbs).to_bytes(3, "big"),
                tbs,
                len(extensions).to_bytes(2, "big"),
                extensions,
            )
        )
        if key_verifies(log.key, sct.signature, signed):
            return None
    return "no signed certificate timestamp verifies with a CT log of the trusted root"


# -- the transparency log -----------------------------------------------------------------


@dataclass(frozen=True)
class InclusionProof:
    log_index: int
    tree_size: int
    root_hash: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str


@dataclass(frozen=True)
class LogEntry:
    log_index: int
    log_id: bytes
    integrated_time: int
    body: bytes
    promise: bytes | None  # the signed entry timestamp
    proof: InclusionProof | None


def parse_log_entry(value: Any, where: str) -> LogEntry:
    entry = _bundle_object(value, where)
    proof_value = entry.get("inclusionProof")
    proof = None
    if proof_value is not None:
        at = f"{where}.inclusionProof"
        fields = _bundle_object(proof_value, at)
        hashes = fields.get("hashes", [])
        if not isinstance(hashes, list) or len(hashes) > MAX_PROOF_HASHES:
            raise _unverifiable(f"{at}.hashes is not a list of at most {MAX_PROOF_HASHES}")
        checkpoint = _bundle_object(fields.get("checkpoint"), f"{at}.checkpoint").get("envelope")
        if not isinstance(checkpoint, str):
            raise _unverifiable(f"{at}.checkpoint.envelope is missing")
        proof = InclusionProof(
            _number(fields.get("logIndex"), f"{at}.logIndex"),
            _number(fields.get("treeSize"), f"{at}.treeSize"),
            _bundle_base64(fields.get("rootHash"), f"{at}.rootHash"),
            tuple(_bundle_base64(h, f"{at}.hashes[{i}]") for i, h in enumerate(hashes)),
            checkpoint,
        )
    promise = entry.get("inclusionPromise")
    return LogEntry(
        _number(entry.get("logIndex"), f"{where}.logIndex"),
        _bundle_base64(
            _bundle_object(entry.get("logId"), f"{where}.logId").get("keyId"),
            f"{where}.logId.keyId",
        ),
        _number(entry.get("integratedTime"), f"{where}.integratedTime"),
        _bundle_base64(entry.get("canonicalizedBody"), f"{where}.canonicalizedBody"),
        None
        if promise is None
        else _bundle_base64(
            _bundle_object(promise, f"{where}.inclusionPromise").get("signedEntryTimestamp"),
            f"{where}.inclusionPromise.signedEntryTimestamp",
        ),
        proof,
    )


def verify_promise(entry: LogEntry, log: TransparencyLog) -> bool:
    """The signed entry timestamp: the log's signature over the canonical JSON (RFC 8785)
    of the body, integrated time, log index and log id (hex), as Rekor signs it."""
    signed = {
        "body": base64.b64encode(entry.body).decode(),
        "integratedTime": entry.integrated_time,
        "logID": entry.log_id.hex(),
        "logIndex": entry.log_index,
    }
    text = json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()
    return entry.promise is not None and key_verifies(log.key, entry.promise, text)


def leaf_hash(body: bytes) -> bytes:
    return hashlib.sha256(b"\0" + body).digest()


def merkle_root_from_proof(
    index: int, size: int, leaf: bytes, path: tuple[bytes, ...]
) -> bytes | None:
    """The root an inclusion proof leads to (RFC 9162, 2.1.3.2), or None when the proof
    cannot be one for a leaf `index` of a tree of `size`."""
    if not 0 <= index < size:
        return None
    node, last, result = index, size - 1, leaf
    for sibling in path:
        if last == 0:
            return None
        if node & 1 or node == last:
            result = hashlib.sha256(b"\1" + sibling + result).digest()
            while not node & 1 and node != 0:
                node, last = node >> 1, last >> 1
        else:
            result = hashlib.sha256(b"\1" + result + sibling).digest()
        node, last = node >> 1, last >> 1
    return result if last == 0 else None


def checkpoint_problem(proof: InclusionProof, log: TransparencyLog) -> str | None:
    """Why the checkpoint (a signed note: origin, tree size, root hash, then signature
    lines `— NAME BASE64(KEYHINT SIGNATURE)`) does not vouch for the proof's root."""
    body, blank, signatures = proof.checkpoint.partition("\n\n")
    lines = body.split("\n")
    if not blank or len(lines) < 3:
        return "the checkpoint is not a signed note"
    size, root = lines[1], lines[2]
    if not size.isdigit() or int(size) != proof.tree_size:
        return "the checkpoint is for another tree size than the inclusion proof"
    if root != base64.b64encode(proof.root_hash).decode():
        return "the checkpoint is for another root hash than the inclusion proof"
    signed = (body + "\n").encode()
    for line in signatures.split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != "\u2014":
            continue
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except (binascii.Error, ValueError):
            continue
        if raw[:4] == log.key_id[:4] and key_verifies(log.key, raw[4:], signed):
            return None
    return "the checkpoint is not signed by the log's key"


def _entry_problem(entry: LogEntry, log: TransparencyLog) -> str | None:
    if not log.valid.holds(_moment(entry.integrated_time)):
        return "the log's key was not valid at the entry's integrated time"
    if entry.promise is None:
        return "no inclusionPromise: nothing signed says when the entry was logged"
    if not verify_promise(entry, log):
        return "the signed entry timestamp does not verify with the log's key"
    proof = entry.proof
    if proof is None:
        return None
    root = merkle_root_from_proof(
        proof.log_index, proof.tree_size, leaf_hash(entry.body), proof.hashes
    )
    if root is None or root != proof.root_hash:
        return "the inclusion proof does not lead to its root hash"
    return checkpoint_problem(proof, log)


def _moment(seconds: int) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, ValueError, OSError):
        raise _unverifiable("integratedTime is out of range") from None


# -- the log entry's body -----------------------------------------------------------------


def _body_problem(body: bytes, content: MessageSignature | Envelope, leaf_der: bytes) -> str | None:
    """Why the log entry is not about this bundle's signature, certificate and artifact."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return "the log entry body is not JSON"
    if not isinstance(document, dict) or not isinstance(document.get("spec"), dict):
        return "the log entry body has no spec"
    kind, spec = document.get("kind"), document["spec"]
    if kind == "hashedrekord" and isinstance(content, MessageSignature):
        hashed = _dig(spec, "data", "hash")
        signature = _dig(spec, "signature")
        name = content.algorithm.replace("SHA2_", "sha")
        if hashed.get("algorithm") != name or hashed.get("value") != content.digest.hex():
            return "the log entry is for another artifact digest"
        if _decoded(signature.get("content")) != content.signature:
            return "the log entry is for another signature"
        if not _same_certificate(_dig(signature, "publicKey").get("content"), leaf_der):
            return "the log entry names another certificate"
        return None
    if kind == "dsse" and isinstance(content, Envelope):
        payload = _dig(spec, "payloadHash")
        expected = hashlib.sha256(content.payload).hexdigest()
        if payload.get("algorithm") != "sha256" or payload.get("value") != expected:
            return "the log entry is for another DSSE payload"
        for item in spec.get("signatures") if isinstance(spec.get("signatures"), list) else []:
            signed = item if isinstance(item, dict) else {}
            if _decoded(signed.get("signature")) in content.signatures and _same_certificate(
                signed.get("verifier"), leaf_der
            ):
                return None
        return "the log entry names another signature or certificate"
    return f"a log entry of kind {shown(kind)} for this bundle is not checked"


def _dig(value: dict[str, Any], *names: str) -> dict[str, Any]:
    for name in names:
        found = value.get(name)
        value = found if isinstance(found, dict) else {}
    return value


def _decoded(value: Any) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True) if isinstance(value, str) else None
    except (binascii.Error, ValueError):
        return None


def _same_certificate(value: Any, leaf_der: bytes) -> bool:
    """Whether a base64 PEM certificate, as Rekor stores it, is the leaf."""
    pem = _decoded(value)
    try:
        found = x509.load_pem_x509_certificate(pem) if pem else None
    except ValueError:
        return False
    return found is not None and found.public_bytes(serialization.Encoding.DER) == leaf_der


# -- verification -------------------------------------------------------------------------


@dataclass(frozen=True)
class _LeafKey:
    """The certificate's key, in the shape bundles.py verifies content with."""

    key: PublicKey
    fingerprint: str

    def verifies(self, signature: bytes, payload: bytes) -> bool:
        return key_verifies(self.key, signature, payload)


def verify_keyless(
    bundle: Bundle, digest: str, trust: KeylessTrust, manifest: Callable[[], bytes]
) -> str:
    """The policy identity that signed `bundle` for image `digest`, or BundleProblem."""
    if bundle.certificate is None:
        raise _unverifiable("not a keyless bundle")
    try:
        leaf = x509.load_der_x509_certificate(bundle.certificate)
        issuer, names = fulcio_issuer(leaf), certificate_names(leaf)
        code_signing = _is_code_signing(leaf)
        key = leaf.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise _unverifiable("the bundle's certificate is not a usable X.509 certificate") from None
    entry = _logged_entry(bundle, trust.root)
    moment = _moment(entry.integrated_time)
    when = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if not _valid_at(leaf, moment):
        raise _unverifiable(f"the certificate was not valid when the log integrated it ({when})")
    issuers = (issuer_of(leaf, authority, moment) for authority in trust.root.authorities)
    issuer_certificate = next((found for found in issuers if found is not None), None)
    if issuer_certificate is None:
        raise BundleProblem(
            Failure.UNKNOWN_KEY,
            f"the certificate does not chain to a certificate authority of the trusted root "
            f"valid at {when}",
        )
    unlogged = sct_problem(leaf, issuer_certificate, trust.root.ct_logs)
    if unlogged is not None:
        raise BundleProblem(Failure.UNKNOWN_KEY, unlogged)
    if not code_signing:
        raise BundleProblem(Failure.UNKNOWN_KEY, "the certificate is not for code signing")
    shown = f"{', '.join(names[:3]) or 'no e-mail or URI'} from {issuer or 'no issuer'}"
    identity = next((i for i in trust.identities if i.matches(issuer or "", names)), None)
    if identity is None:
        raise BundleProblem(
            Failure.UNKNOWN_KEY, f"the certificate's identity ({shown}) is none the rule trusts"
        )
    if not isinstance(key, ec.EllipticCurvePublicKey | Ed25519PublicKey | rsa.RSAPublicKey):
        raise _unverifiable("the certificate's key is not ECDSA, Ed25519 or RSA")
    try:
        verify_content(bundle.content, digest, (_LeafKey(key, shown),), manifest)
    except BundleProblem as problem:
        if problem.failure is Failure.UNKNOWN_KEY:
            raise _unverifiable(
                "the signature does not verify with the certificate's key"
            ) from None
        raise
    mismatch = _body_problem(entry.body, bundle.content, bundle.certificate)
    if mismatch is not None:
        raise _unverifiable(mismatch)
    return f"keyless {shown}"


def _logged_entry(bundle: Bundle, root: TrustedRoot) -> LogEntry:
    """The first log entry a log of the trusted root vouches for; else why none does."""
    entries = bundle.tlog_entries[:MAX_TLOG_ENTRIES]
    if not entries:
        raise _unverifiable("a keyless bundle without a transparency log entry")
    problems = []
    for i, value in enumerate(entries):
        entry = parse_log_entry(value, f"verificationMaterial.tlogEntries[{i}]")
        log = root.log(entry.log_id)
        if log is None:
            problems.append("the log entry is from a log the trusted root does not name")
            continue
        problem = _entry_problem(entry, log)
        if problem is None:
            return entry
        problems.append(problem)
    raise _unverifiable("; ".join(problems))


def _bundle_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _unverifiable(f"{where} is not an object")
    return value


def _bundle_base64(value: Any, where: str) -> bytes:
    decoded = _decoded(value)
    if not decoded:
        raise _unverifiable(f"{where} is missing or not base64")
    return decoded


def _number(value: Any, where: str) -> int:
    """An int64 as protobuf JSON writes it: a decimal string (or a plain number)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    raise _unverifiable(f"{where} is not a non-negative integer")


def _unverifiable(reason: str) -> BundleProblem:
    return BundleProblem(Failure.UNVERIFIABLE, reason)
