"""Ed25519 signatures over ledger entries and exported heads.

A signing key is an Ed25519 private key in a file: PEM (PKCS#8, as `kubeproof evidence
keygen` writes it) or the 32 raw bytes. A public key is PEM (SubjectPublicKeyInfo) or
the 32 raw bytes. A key is named by its key id: the first 16 hex digits of SHA-256 over
its raw public key. Only that id and the signatures reach the database or any output;
the key itself never does, and no message quotes a key file's content.

What is signed is the entry's hash (which covers its number, type, time, content and the
previous hash), prefixed with a purpose label so that an entry signature cannot be
replayed as a head signature or the other way round.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.orm import Session

from kubeproof.bounded import UnreadableFile, read_bounded

SIGNING_KEY_VARIABLE = "KUBEPROOF_SIGNING_KEY"
ALGORITHM = "Ed25519"
KEY_ID_LENGTH = 16
SIGNATURE_LENGTH = 128  # hex digits of a 64-byte Ed25519 signature
ENTRY_PURPOSE = b"kubeproof ledger entry v1\n"
HEAD_PURPOSE = b"kubeproof ledger head v1\n"
_RAW_KEY_BYTES = 32
_MAX_KEY_FILE = 64 * 1024  # a key file is a few hundred bytes; refuse anything huge


class SigningKeyError(Exception):
    """A key file that cannot be used; the message names the file, never its content."""


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_LENGTH]


@dataclass(frozen=True)
class Signer:
    """A private key, held in memory only while kubeproof runs."""

    private_key: Ed25519PrivateKey
    key_id: str

    def sign(self, purpose: bytes, message: bytes) -> str:
        return self.private_key.sign(purpose + message).hex()

    def __repr__(self) -> str:  # never print the key, even by accident in a traceback
        return f"Signer(key_id={self.key_id!r})"


@dataclass(frozen=True)
class PublicKey:
    key: Ed25519PublicKey
    key_id: str

    def valid(self, purpose: bytes, message: bytes, signature: str) -> bool:
        try:
            raw = bytes.fromhex(signature)
        except ValueError:
            return False
        if len(raw) != SIGNATURE_LENGTH // 2:
            return False
        try:
            self.key.verify(raw, purpose + message)
        except InvalidSignature:
            return False
        return True


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        return read_bounded(path, _MAX_KEY_FILE, f"{what} {path}")
    except UnreadableFile as refused:
        raise SigningKeyError(str(refused)) from None


def parse_private_key(data: bytes, source: str) -> Signer:
    """A signer from PEM (PKCS#8) or 32 raw bytes; SigningKeyError naming `source`."""
    key: object
    if len(data) == _RAW_KEY_BYTES:
        key = Ed25519PrivateKey.from_private_bytes(data)
    else:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except TypeError:
            raise SigningKeyError(
                f"signing key {source} is encrypted: give an unencrypted Ed25519 key"
            ) from None
        except (ValueError, UnsupportedAlgorithm):
            raise SigningKeyError(
                f"signing key {source} is not an Ed25519 private key "
                "(PEM PKCS#8 or 32 raw bytes, as `kubeproof evidence keygen` writes)"
            ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"signing key {source} is not an Ed25519 key")
    return Signer(key, key_id(key.public_key()))


def parse_public_key(data: bytes, source: str) -> PublicKey:
    """A public key from PEM (SubjectPublicKeyInfo) or 32 raw bytes."""
    key: object
    if len(data) == _RAW_KEY_BYTES:
        key = Ed25519PublicKey.from_public_bytes(data)
    else:
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm):
            raise SigningKeyError(
                f"public key {source} is not an Ed25519 public key "
                "(PEM or 32 raw bytes, as `kubeproof evidence keygen` writes)"
            ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"public key {source} is not an Ed25519 key")
    return PublicKey(key, key_id(key))


def load_signer(path: str | None) -> Signer | None:
    """The signer from `path`, else from $KUBEPROOF_SIGNING_KEY (a file), else None."""
    chosen = path or os.environ.get(SIGNING_KEY_VARIABLE)
    if not chosen:
        return None
    source = Path(chosen).expanduser()
    return parse_private_key(_read_key_file(source, "signing key"), str(source))


def load_public_key(path: str) -> PublicKey:
    source = Path(path).expanduser()
    return parse_public_key(_read_key_file(source, "public key"), str(source))


def public_key_path(private_path: Path) -> Path:
    return private_path.with_name(private_path.name + ".pub")


def generate_key_pair(private_path: Path) -> tuple[Path, str]:
    """Write a new private key (mode 0600, never overwriting) and its public key beside
    it (FILE.pub); returns the public key's path and the key id."""
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_path = public_key_path(private_path)
    for path in (private_path, public_path):
        if path.exists():
            raise SigningKeyError(f"{path} already exists: not overwriting a key")
    try:
        # O_EXCL and the mode at creation: the key is never readable by others, not even
        # for the moment between writing and a chmod.
        descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(private_pem)
        public_path.write_bytes(public_pem)
    except OSError as error:
        raise SigningKeyError(
            f"cannot write the key pair at {private_path}: {error.strerror or error}"
        ) from None
    return public_path, key_id(key.public_key())


# Where a writing session carries its store's signer (Session.info), so that whatever
# appends an entry signs it without being handed the key.
SIGNER_INFO = "kubeproof.signer"


def signer_of(session: Session) -> Signer | None:
    signer = session.info.get(SIGNER_INFO)
    return signer if isinstance(signer, Signer) else None


@dataclass
class SignatureAudit:
    """Checks the signatures of ledger entries, given in order. Without public keys it
    only counts them (nothing can be checked); with keys, every signed entry must verify
    with one of them, and once an entry is signed every later one must be."""

    keys: dict[str, PublicKey]
    signed: int = 0
    unsigned: int = 0
    first_signed: int | None = None
    key_ids: set[str] = field(default_factory=set)

    @property
    def checking(self) -> bool:
        return bool(self.keys)

    def problem(
        self, seq: int, entry_hash: str, signature: str | None, key: str | None
    ) -> str | None:
        if signature is None and key is None:
            self.unsigned += 1
            if self.checking and self.first_signed is not None:
                return (
                    f"is not signed, though entries from #{self.first_signed} on are: its "
                    "signature was removed or it was added without the signing key"
                )
            return None
        if signature is None or key is None:
            return "has a signature without a key id or a key id without a signature"
        self.signed += 1
        self.key_ids.add(key)
        if self.first_signed is None:
            self.first_signed = seq
        if not self.checking:
            return None
        public = self.keys.get(key)
        if public is None:
            return (
                f"is signed by key {key}, not by a key given with --public-key "
                f"({', '.join(sorted(self.keys))})"
            )
        if not public.valid(ENTRY_PURPOSE, entry_hash.encode(), signature):
            return (
                f"its signature does not verify with key {key}: the entry was edited and "
                "re-signed, or the signature forged"
            )
        return None

    def finish(self) -> str | None:
        if self.checking and self.signed == 0:
            return "--public-key was given but no ledger entry is signed"
        return None


def key_ring(keys: Iterable[PublicKey]) -> dict[str, PublicKey]:
    return {key.key_id: key for key in keys}
