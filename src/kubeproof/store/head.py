"""The ledger head exported for anchoring: a small JSON document to keep outside the
database (a ticket, another system, a signed report), later given back to
`kubeproof evidence verify --expect-head FILE` (fail unless the chain still holds that
entry) or `--since-head FILE` (trust the chain up to it and rehash only what follows).

    {"kubeproofLedgerHead": 1,
     "store": {"firstEntryHash": HASH},          the chain's identity: its entry #1
     "seq": N, "entryHash": HASH, "recordedAt": TIME, "entries": N,
     "signature": {"algorithm": "Ed25519", "keyId": ID, "value": HEX}}   optional

The signature covers the canonical JSON of everything else in the document.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kubeproof.bounded import UnreadableFile, read_bounded
from kubeproof.store.ledger import canonical_json, canonical_time
from kubeproof.store.schema import LedgerEntryRow
from kubeproof.store.signing import ALGORITHM, HEAD_PURPOSE, PublicKey, Signer

FORMAT_KEY = "kubeproofLedgerHead"
FORMAT_VERSION = 1
_HASH = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"[0-9a-f]+")
_MAX_FILE = 64 * 1024
_MAX_SEQ = 2**62


class HeadFileError(Exception):
    """An exported head that cannot be used; the message names the file."""


class EmptyLedger(Exception):
    pass


@dataclass(frozen=True)
class ExportedHead:
    seq: int
    entry_hash: str
    first_entry_hash: str
    recorded_at: str
    entries: int
    key_id: str | None = None
    signature: str | None = None
    source: str = "the exported head"

    def body(self) -> dict[str, Any]:
        """Everything the signature covers."""
        return {
            FORMAT_KEY: FORMAT_VERSION,
            "store": {"firstEntryHash": self.first_entry_hash},
            "seq": self.seq,
            "entryHash": self.entry_hash,
            "recordedAt": self.recorded_at,
            "entries": self.entries,
        }

    def document(self) -> dict[str, Any]:
        document = self.body()
        if self.signature is not None:
            document["signature"] = {
                "algorithm": ALGORITHM,
                "keyId": self.key_id,
                "value": self.signature,
            }
        return document

    def signature_problem(self, keys: dict[str, PublicKey]) -> str | None:
        """Why the head's signature cannot be trusted with `keys`, or None if it verifies."""
        if self.signature is None or self.key_id is None:
            return f"{self.source} is not signed"
        public = keys.get(self.key_id)
        if public is None:
            return f"{self.source} is signed by key {self.key_id}, not by a key given"
        if not public.valid(HEAD_PURPOSE, canonical_json(self.body()), self.signature):
            return f"{self.source}: its signature does not verify with key {self.key_id}"
        return None


def current_head(session: Session, signer: Signer | None) -> ExportedHead:
    """The newest entry of the chain as stored (run `verify` to know it is intact)."""
    newest = session.execute(
        select(LedgerEntryRow.seq, LedgerEntryRow.entry_hash, LedgerEntryRow.recorded_at)
        .order_by(LedgerEntryRow.seq.desc())
        .limit(1)
    ).first()
    if newest is None:
        raise EmptyLedger("the ledger is empty: record a scan first")
    first = session.scalars(select(LedgerEntryRow.entry_hash).where(LedgerEntryRow.seq == 1))
    count = session.execute(select(func.count()).select_from(LedgerEntryRow)).scalar_one()
    head = ExportedHead(
        seq=newest.seq,
        entry_hash=newest.entry_hash,
        first_entry_hash=first.first() or "",
        recorded_at=canonical_time(newest.recorded_at) or "",
        entries=int(count),
    )
    if signer is None:
        return head
    signature = signer.sign(HEAD_PURPOSE, canonical_json(head.body()))
    return dataclasses.replace(head, key_id=signer.key_id, signature=signature)


def read_head(path: str) -> ExportedHead:
    source = Path(path).expanduser()
    try:
        data = read_bounded(source, _MAX_FILE, f"head file {source}")
    except UnreadableFile as refused:
        raise HeadFileError(str(refused)) from None
    return parse_head(data, str(source))


def parse_head(data: bytes, source: str) -> ExportedHead:
    """An exported head from its JSON, or HeadFileError naming `source` and the field."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise HeadFileError(f"head file {source} is not JSON: {error}") from None
    if not isinstance(document, dict) or document.get(FORMAT_KEY) != FORMAT_VERSION:
        raise HeadFileError(
            f"head file {source} is not a ledger head from `kubeproof evidence export-head` "
            f"(no {FORMAT_KEY}: {FORMAT_VERSION})"
        )
    store = document.get("store")
    if not isinstance(store, dict):
        raise HeadFileError(f"head file {source}: store must be an object")
    signature = document.get("signature")
    key_id = value = None
    if signature is not None:
        if not isinstance(signature, dict) or signature.get("algorithm") != ALGORITHM:
            raise HeadFileError(f"head file {source}: signature must be an {ALGORITHM} object")
        key_id = _hex(signature.get("keyId"), f"head file {source}: signature.keyId")
        value = _hex(signature.get("value"), f"head file {source}: signature.value")
    seq = _count(document.get("seq"), f"head file {source}: seq", minimum=1)
    recorded_at = document.get("recordedAt")
    if not isinstance(recorded_at, str) or len(recorded_at) > 64:
        raise HeadFileError(f"head file {source}: recordedAt must be a time")
    return ExportedHead(
        seq=seq,
        entry_hash=_hash(document.get("entryHash"), f"head file {source}: entryHash"),
        first_entry_hash=_hash(
            store.get("firstEntryHash"), f"head file {source}: store.firstEntryHash"
        ),
        recorded_at=recorded_at,
        entries=_count(document.get("entries"), f"head file {source}: entries", minimum=seq),
        key_id=key_id,
        signature=value,
        source=f"head file {source}",
    )


def _hash(value: object, where: str) -> str:
    if not isinstance(value, str) or not _HASH.fullmatch(value):
        raise HeadFileError(f"{where} must be a SHA-256 hash (64 lowercase hex digits)")
    return value


def _hex(value: object, where: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 256 or not _HEX.fullmatch(value):
        raise HeadFileError(f"{where} must be lowercase hex")
    return value


def _count(value: object, where: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value < _MAX_SEQ:
        raise HeadFileError(f"{where} must be a whole number from {minimum}")
    return value


def dumps(head: ExportedHead) -> str:
    return orjson.dumps(head.document(), option=orjson.OPT_INDENT_2).decode() + "\n"
