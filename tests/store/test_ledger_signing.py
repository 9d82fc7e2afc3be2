"""Ed25519 signatures on ledger entries: written by every command that appends, checked by
`evidence verify --public-key`, and the key itself never stored or printed."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from store_helpers import deployment, execute, query, record

from databases import Database
from kubeproof.cli.main import main
from kubeproof.store import ledger
from kubeproof.store.db import Store, open_store
from kubeproof.store.schema import ExceptionRow, LedgerEntryRow, LedgerHeadRow
from kubeproof.store.signing import (
    ENTRY_PURPOSE,
    SIGNING_KEY_VARIABLE,
    SigningKeyError,
    load_signer,
    parse_private_key,
    parse_public_key,
)


def keygen(directory: Path, name: str, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    """A new key pair through the CLI: (private key file, key id)."""
    private = directory / name
    assert main(["evidence", "keygen", "--output", str(private)]) == 0
    out = capsys.readouterr().out
    key_id = out.split("key id ")[1].strip()
    return private, key_id


def pub(private: Path) -> str:
    return str(private) + ".pub"


def verify(url: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(["evidence", "verify", "--db", url, *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def add_exception(url: str, *extra: str) -> int:
    return int(main(
        ["exceptions", "add", "--db", url, "--check", "pss.privileged",
         "--subject", "Deployment/shop/storefront", "--owner", "platform",
         "--reason", "migrating", "--expires", "2099-01-01", "--max-days", "40000", *extra]
    ))  # fmt: skip


def scan_files(url: str, directory: Path, *extra: str) -> int:
    manifest = directory / "app.yaml"
    manifest.write_text(deployment(privileged=True))
    return int(
        main(["scan", str(manifest), "--db", url, "--fail-on", "none", "-o", "json", *extra])
    )


@pytest.fixture
def key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    return keygen(tmp_path, "signing.key", capsys)


@pytest.fixture
def signed_store(
    database: Database, key: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[Database]:
    """Entries #1 (scan, --signing-key), #2 (exception, $KUBEPROOF_SIGNING_KEY) and #3
    (revocation, --signing-key), all signed by `key`."""
    private, _ = key
    assert scan_files(database.url, tmp_path, "--signing-key", str(private)) == 0
    os.environ[SIGNING_KEY_VARIABLE] = str(private)
    try:
        assert add_exception(database.url) == 0
    finally:
        del os.environ[SIGNING_KEY_VARIABLE]
    revoke = ["exceptions", "revoke", "EXC-1", "--db", database.url, "--by", "me",
              "--reason", "done", "--signing-key", str(private)]  # fmt: skip
    assert main(revoke) == 0
    capsys.readouterr()
    yield database


def test_keygen_writes_a_private_key_only_its_owner_can_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private, key_id = keygen(tmp_path, "evidence.key", capsys)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    signer = load_signer(str(private))
    public = parse_public_key(Path(pub(private)).read_bytes(), "pub")
    assert signer is not None and signer.key_id == public.key_id == key_id and len(key_id) == 16
    # It refuses to overwrite a key (a lost key makes every signature unverifiable).
    before = private.read_bytes()
    assert main(["evidence", "keygen", "--output", str(private)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert private.read_bytes() == before


def test_every_appended_entry_is_signed_and_verifies(
    signed_store: Database, key: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    private, key_id = key
    rows = query(signed_store.url, "SELECT seq, key_id, signature FROM ledger ORDER BY seq")
    assert [(seq, kid) for seq, kid, _ in rows] == [(1, key_id), (2, key_id), (3, key_id)]
    assert all(len(signature) == 128 for _, _, signature in rows)
    code, out, err = verify(signed_store.url, capsys, "--public-key", pub(private))
    assert (code, err) == (0, "")
    assert f"3 entries signed by key {key_id}, all verified" in out
    # Without the public key the signatures are counted, not taken as checked.
    code, out, _ = verify(signed_store.url, capsys)
    assert code == 0 and "not checked (give --public-key)" in out


def test_a_forged_signature_fails(
    signed_store: Database, key: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    forged = Ed25519PrivateKey.generate().sign(b"anything").hex()
    execute(signed_store.url, f"UPDATE ledger SET signature = '{forged}' WHERE seq = 2")
    code, _, err = verify(signed_store.url, capsys, "--public-key", pub(key[0]))
    assert code == 1
    assert "ledger entry #2" in err and "signature does not verify" in err


def test_a_wrong_public_key_fails(
    signed_store: Database,
    key: tuple[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other, other_id = keygen(tmp_path, "other.key", capsys)
    code, _, err = verify(signed_store.url, capsys, "--public-key", pub(other))
    assert code == 1
    assert "ledger entry #1" in err and f"signed by key {key[1]}" in err and other_id in err


def test_an_entry_signed_by_another_key_fails_unless_that_key_is_given(
    signed_store: Database,
    key: tuple[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other, other_id = keygen(tmp_path, "rotated.key", capsys)
    assert add_exception(signed_store.url, "--signing-key", str(other)) == 0
    capsys.readouterr()
    code, _, err = verify(signed_store.url, capsys, "--public-key", pub(key[0]))
    assert code == 1 and "ledger entry #4" in err and f"signed by key {other_id}" in err
    # A rotated key: both public keys given, every entry verifies.
    code, out, _ = verify(
        signed_store.url, capsys, "--public-key", pub(key[0]), "--public-key", pub(other)
    )
    assert code == 0 and "4 entries signed" in out


def _rehash_last_exception(url: str, reason: str) -> None:
    """What someone who knows the algorithm does: edit the exception, recompute its entry's
    hash, and the head, so that the chain alone no longer shows the edit."""
    store = open_store(url)
    try:
        with store.writing() as session:
            exception = session.scalars(select(ExceptionRow)).one()
            exception.reason = reason
            entry = session.scalars(
                select(LedgerEntryRow).where(LedgerEntryRow.exception_id == exception.id)
            ).one()
            assert entry.seq == 2
            content = {"exception": ledger.row_content(exception, ledger.EXCEPTION_FIELDS)}
            entry.entry_hash = ledger.entry_hash(
                entry.seq, entry.entry_type, entry.recorded_at, entry.prev_hash, content
            )
            later = session.scalars(select(LedgerEntryRow).where(LedgerEntryRow.seq > 2)).all()
            previous = entry.entry_hash
            for following in later:
                following.prev_hash = previous
                following.entry_hash = ledger.entry_hash(
                    following.seq,
                    following.entry_type,
                    following.recorded_at,
                    previous,
                    ledger._content(session, following),
                )
                previous = following.entry_hash
            head = session.get(LedgerHeadRow, ledger.HEAD_ID)
            assert head is not None
            head.entry_hash = previous
    finally:
        store.close()


def test_a_re_signed_edit_fails(
    signed_store: Database, key: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _rehash_last_exception(signed_store.url, "never mind")
    code, _, _ = verify(signed_store.url, capsys)
    assert code == 0, "the rehashed chain alone should look intact: the test edits nothing"
    # Re-signed with the forger's own key under the real key's id ...
    forger = Ed25519PrivateKey.generate()
    hashes = query(signed_store.url, "SELECT seq, entry_hash FROM ledger WHERE seq >= 2")
    for seq, entry_hash in hashes:
        signature = forger.sign(ENTRY_PURPOSE + entry_hash.encode()).hex()
        execute(signed_store.url, f"UPDATE ledger SET signature = '{signature}' WHERE seq = {seq}")
    code, _, err = verify(signed_store.url, capsys, "--public-key", pub(key[0]))
    assert code == 1 and "ledger entry #2" in err and "signature does not verify" in err
    # ... or under its own id.
    execute(signed_store.url, "UPDATE ledger SET key_id = 'f0f0f0f0f0f0f0f0' WHERE seq >= 2")
    code, _, err = verify(signed_store.url, capsys, "--public-key", pub(key[0]))
    assert code == 1 and "ledger entry #2" in err and "signed by key f0f0f0f0f0f0f0f0" in err


def test_unsigned_entries_after_signing_began_fail(
    signed_store: Database,
    key: tuple[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert scan_files(signed_store.url, tmp_path) == 0  # no key: entry #4 unsigned
    capsys.readouterr()
    code, _, err = verify(signed_store.url, capsys, "--public-key", pub(key[0]))
    assert code == 1 and "ledger entry #4" in err and "is not signed" in err


def test_a_signature_stripped_from_the_chain_fails(
    signed_store: Database, key: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    execute(signed_store.url, "UPDATE ledger SET signature = NULL, key_id = NULL WHERE seq = 2")
    code, _, err = verify(signed_store.url, capsys, "--public-key", pub(key[0]))
    assert code == 1 and "ledger entry #2" in err and "is not signed" in err
    # Every signature stripped: nothing is signed any more, which a key holder notices.
    execute(signed_store.url, "UPDATE ledger SET signature = NULL, key_id = NULL")
    code, _, err = verify(signed_store.url, capsys, "--public-key", pub(key[0]))
    assert code == 1 and "no ledger entry is signed" in err


def test_a_public_key_with_nothing_signed_fails(
    database: Database, key: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(database.url)
    record(store, deployment())
    store.close()
    code, _, err = verify(database.url, capsys, "--public-key", pub(key[0]))
    assert code == 1 and "no ledger entry is signed" in err
    assert verify(database.url, capsys)[0] == 0  # without a key: an unsigned store is fine


def test_key_material_never_reaches_the_database_or_the_output(
    signed_store: Database,
    key: tuple[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    private, key_id = key
    pem = private.read_text()
    body = "".join(line for line in pem.splitlines() if "-----" not in line)
    signer = load_signer(str(private))
    assert signer is not None
    raw = signer.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public_pem = Path(pub(private)).read_text().splitlines()
    public_body = "".join(line for line in public_pem if "---" not in line)
    assert main(["evidence", "export-head", "--db", signed_store.url,
                 "--signing-key", str(private)]) == 0  # fmt: skip
    _, out, err = verify(signed_store.url, capsys, "--public-key", pub(private), "-o", "json")
    captured = capsys.readouterr()
    outputs = out + err + captured.out + captured.err
    stored = signed_store.stored_text()
    for secret in (body, raw.hex(), public_body):
        assert secret not in stored and secret not in outputs
    assert raw not in stored.encode("latin-1")
    assert key_id in stored and key_id in out
    assert repr(signer) == f"Signer(key_id={key_id!r})"


def test_unusable_signing_keys_are_clear_usage_errors(
    database: Database, tmp_path: Path, key: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    open_store(database.url).close()
    garbage = tmp_path / "garbage.key"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXZhbHVl\n-----END PRIVATE KEY-----\n")
    rsa = tmp_path / "public-as-private.key"
    rsa.write_bytes(Path(pub(key[0])).read_bytes())
    cases = {
        str(tmp_path / "missing.key"): "cannot read signing key",
        str(garbage): "is not an Ed25519 private key",
        str(rsa): "is not an Ed25519 private key",
    }
    for path, message in cases.items():
        assert scan_files(database.url, tmp_path, "--signing-key", path) == 2
        err = capsys.readouterr().err
        assert message in err and path in err and "Traceback" not in err
        assert "c2VjcmV0LXZhbHVl" not in err
        assert add_exception(database.url, "--signing-key", path) == 2
        assert message in capsys.readouterr().err
    # Nothing was recorded by any of them.
    assert query(database.url, "SELECT count(*) FROM ledger") == [(0,)]
    code, _, err = verify(database.url, capsys, "--public-key", str(garbage))
    assert code == 2 and "is not an Ed25519 public key" in err


def test_a_raw_32_byte_key_signs_too(database: Database, tmp_path: Path) -> None:
    private = Ed25519PrivateKey.generate()
    raw_file = tmp_path / "raw.key"
    raw_file.write_bytes(
        private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
    )
    store = open_store(database.url, signing_key=str(raw_file))
    try:
        recorded = record(store, deployment())
    finally:
        store.close()
    [(signature,)] = query(database.url, "SELECT signature FROM ledger WHERE seq = 1")
    private.public_key().verify(
        bytes.fromhex(signature), ENTRY_PURPOSE + recorded.ledger_hash.encode()
    )


def test_a_store_opened_only_to_read_never_loads_the_key(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store: Store = open_store(database.url)
    store.close()
    monkeypatch.setenv(SIGNING_KEY_VARIABLE, str(tmp_path / "absent.key"))
    open_store(database.url, create=False).close()  # reading: no key needed
    with pytest.raises(Exception, match="cannot read signing key"):
        open_store(database.url)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_key_parsers_never_raise_anything_but_their_error(data: bytes) -> None:
    for parse in (parse_private_key, parse_public_key):
        try:
            parsed = parse(data, "fuzzed.key")
        except SigningKeyError as error:
            assert "fuzzed.key" in str(error)
        else:
            assert len(parsed.key_id) == 16


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_pem_shaped_garbage_is_refused_cleanly(text: str) -> None:
    data = f"-----BEGIN PRIVATE KEY-----\n{text}\n-----END PRIVATE KEY-----\n".encode()
    with pytest.raises(SigningKeyError, match=r"pem\.key"):
        parse_private_key(data, "pem.key")


def test_signatures_cover_the_time_they_were_made() -> None:
    # The signature covers the entry hash, which covers its time: moving it breaks both.
    when = datetime(2026, 1, 1, tzinfo=UTC)
    first = ledger.entry_hash(1, "scan", when, ledger.GENESIS_HASH, {})
    later = ledger.entry_hash(1, "scan", when.replace(minute=1), ledger.GENESIS_HASH, {})
    assert first != later
