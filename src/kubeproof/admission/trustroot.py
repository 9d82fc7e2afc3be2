"""The trust a keyless signature rule names: a Sigstore trusted root and the identities
whose signatures it accepts.

The trusted root is a protobuf-specs `dev.sigstore.trustedroot.v1.TrustedRoot` in JSON:
the certificate authorities (Fulcio) and transparency logs (Rekor) whose keys and
certificates are trusted, each for a period. It is read strictly, each problem naming the
field: a root half-understood would trust something nobody chose. `ctlogs` (certificate
transparency logs, whose signed timestamps a certificate must then carry) are read like
`tlogs`; `timestampAuthorities` are checked for shape only: nothing uses them yet.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kubeproof.admission.bundles import PublicKey, shown
from kubeproof.bounded import UnreadableFile, read_bounded

MAX_TRUSTED_ROOT_BYTES = 1024 * 1024
_ROOT_FIELDS = frozenset(
    {"mediaType", "tlogs", "certificateAuthorities", "ctlogs", "timestampAuthorities"}
)
_LOG_FIELDS = frozenset(
    {"baseUrl", "hashAlgorithm", "publicKey", "logId", "checkpointKeyId", "operator"}
)
_KEY_FIELDS = frozenset({"rawBytes", "keyDetails", "validFor"})
_CA_FIELDS = frozenset({"subject", "uri", "certChain", "validFor", "operator"})


class TrustedRootProblem(Exception):
    """A trusted root cannot be used; the message names the field."""


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime | None

    def holds(self, moment: datetime) -> bool:
        return self.start <= moment and (self.end is None or moment <= self.end)


@dataclass(frozen=True)
class CertificateAuthority:
    chain: tuple[x509.Certificate, ...]  # the issuing certificate first, the root last
    valid: Window


@dataclass(frozen=True)
class TransparencyLog:
    key_id: bytes
    key: PublicKey
    valid: Window


@dataclass(frozen=True)
class TrustedRoot:
    authorities: tuple[CertificateAuthority, ...]
    logs: tuple[TransparencyLog, ...]
    digest: str  # SHA-256 of the file: the policy's digest covers what it trusts
    ct_logs: tuple[TransparencyLog, ...] = ()

    def log(self, key_id: bytes) -> TransparencyLog | None:
        return next((log for log in self.logs if log.key_id == key_id), None)


@dataclass(frozen=True)
class Identity:
    """A signer the policy trusts: the OIDC issuer, and the certificate's e-mail or URI
    exactly (`subject`) or matched in full by a regular expression (`subject_pattern`)."""

    issuer: str
    subject: str | None = None
    subject_pattern: re.Pattern[str] | None = None

    def matches(self, issuer: str, names: tuple[str, ...]) -> bool:
        if issuer != self.issuer:
            return False
        if self.subject is not None:
            return self.subject in names
        pattern = self.subject_pattern
        return pattern is not None and any(pattern.fullmatch(name) for name in names)

    def __str__(self) -> str:
        subject = self.subject if self.subject is not None else f"/{self.pattern_text}/"
        return f"{subject} from {self.issuer}"

    @property
    def pattern_text(self) -> str:
        return self.subject_pattern.pattern if self.subject_pattern is not None else ""


@dataclass(frozen=True)
class KeylessTrust:
    root: TrustedRoot
    identities: tuple[Identity, ...]

    @property
    def fingerprint(self) -> str:
        """Names the trust in cache keys and the policy digest."""
        text = json.dumps(
            [self.root.digest, [[i.issuer, i.subject, i.pattern_text] for i in self.identities]]
        )
        return "keyless:" + hashlib.sha256(text.encode()).hexdigest()[:16]


# -- the trusted root ---------------------------------------------------------------------


def load_trusted_root(text: str, base: Path | None = None) -> TrustedRoot:
    """The trusted root in file `text` (relative paths are read from `base`)."""
    path = Path(text)
    if not path.is_absolute() and base is not None:
        path = base / path
    try:
        return parse_trusted_root(read_bounded(path, MAX_TRUSTED_ROOT_BYTES, text))
    except UnreadableFile as refused:
        raise TrustedRootProblem(str(refused)) from None


def parse_trusted_root(data: bytes) -> TrustedRoot:
    """A protobuf-specs TrustedRoot (JSON), or TrustedRootProblem naming the field."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise TrustedRootProblem("not JSON") from None
    root = _fields(document, "the document", _ROOT_FIELDS)
    media_type = root.get("mediaType")
    if media_type is not None and not (
        isinstance(media_type, str)
        and media_type.startswith("application/vnd.dev.sigstore.trustedroot")
    ):
        raise TrustedRootProblem(f"mediaType {shown(media_type)} is not a Sigstore trusted root")
    authorities = tuple(
        _authority(entry, f"certificateAuthorities[{i}]")
        for i, entry in enumerate(_entries(root, "certificateAuthorities"))
    )
    logs = tuple(_log(entry, f"tlogs[{i}]") for i, entry in enumerate(_entries(root, "tlogs")))
    ct_logs = tuple(
        _log(entry, f"ctlogs[{i}]") for i, entry in enumerate(_list(root.get("ctlogs"), "ctlogs"))
    )
    for i, entry in enumerate(_list(root.get("timestampAuthorities"), "timestampAuthorities")):
        _fields(entry, f"timestampAuthorities[{i}]", _CA_FIELDS)  # not used: shape only
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return TrustedRoot(authorities, logs, digest, ct_logs)


def _entries(root: dict[str, Any], name: str) -> list[Any]:
    entries = _list(root.get(name), name)
    if not entries:
        raise TrustedRootProblem(f"{name}: name at least one")
    return entries


def _authority(value: Any, where: str) -> CertificateAuthority:
    entry = _fields(value, where, _CA_FIELDS)
    chain = _fields(entry.get("certChain"), f"{where}.certChain", frozenset({"certificates"}))
    items = _list(chain.get("certificates"), f"{where}.certChain.certificates")
    if not items:
        raise TrustedRootProblem(f"{where}.certChain.certificates: name at least one")
    certificates = []
    for i, item in enumerate(items):
        at = f"{where}.certChain.certificates[{i}]"
        raw = _base64(_fields(item, at, frozenset({"rawBytes"})).get("rawBytes"), f"{at}.rawBytes")
        try:
            certificate = x509.load_der_x509_certificate(raw)
            certificate.extensions  # noqa: B018 - parsed now, so a bad one is a policy error
        except ValueError:
            raise TrustedRootProblem(f"{at}.rawBytes is not a DER certificate") from None
        certificates.append(certificate)
    return CertificateAuthority(tuple(certificates), _window(entry.get("validFor"), where))


def _log(value: Any, where: str) -> TransparencyLog:
    entry = _fields(value, where, _LOG_FIELDS)
    algorithm = entry.get("hashAlgorithm", "SHA2_256")
    if algorithm != "SHA2_256":
        raise TrustedRootProblem(f"{where}.hashAlgorithm {shown(algorithm)} is not SHA2_256")
    material = _fields(entry.get("publicKey"), f"{where}.publicKey", _KEY_FIELDS)
    raw = _base64(material.get("rawBytes"), f"{where}.publicKey.rawBytes")
    try:
        key = serialization.load_der_public_key(raw)
    except (ValueError, UnsupportedAlgorithm):
        raise TrustedRootProblem(f"{where}.publicKey.rawBytes is not a DER public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | Ed25519PublicKey | rsa.RSAPublicKey):
        raise TrustedRootProblem(f"{where}.publicKey is not an ECDSA, Ed25519 or RSA key")
    details = material.get("keyDetails")
    if details is not None and not isinstance(details, str):
        raise TrustedRootProblem(f"{where}.publicKey.keyDetails is not a string")
    log_id = _fields(entry.get("logId"), f"{where}.logId", frozenset({"keyId"}))
    key_id = _base64(log_id.get("keyId"), f"{where}.logId.keyId")
    valid = _window(material.get("validFor"), f"{where}.publicKey")
    return TransparencyLog(key_id, key, valid)


def _window(value: Any, where: str) -> Window:
    window = _fields(value, f"{where}.validFor", frozenset({"start", "end"}))
    if "start" not in window:
        raise TrustedRootProblem(f"{where}.validFor.start is missing")
    start = _time(window["start"], f"{where}.validFor.start")
    end = _time(window["end"], f"{where}.validFor.end") if "end" in window else None
    if end is not None and end < start:
        raise TrustedRootProblem(f"{where}.validFor ends before it starts")
    return Window(start, end)


def _time(value: Any, where: str) -> datetime:
    """An RFC 3339 time in UTC, as protobuf JSON writes Timestamps."""
    if not isinstance(value, str) or not value.endswith("Z"):
        raise TrustedRootProblem(f"{where} is not an RFC 3339 UTC time (…Z)")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise TrustedRootProblem(f"{where} is not an RFC 3339 UTC time (…Z)") from None
    return moment.astimezone(UTC)


def _fields(value: Any, where: str, known: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TrustedRootProblem(f"{where} is not an object")
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise TrustedRootProblem(f"{where}: unknown field {shown(unknown[0])}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TrustedRootProblem(f"{where} is not a list")
    return value


def _base64(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise TrustedRootProblem(f"{where} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise TrustedRootProblem(f"{where} is not base64") from None
