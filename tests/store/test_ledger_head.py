"""`evidence export-head`, and `evidence verify --expect-head` / `--since-head`: a head kept
outside the database catches a store rewritten or truncated consistently, which the chain
alone cannot show."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from store_helpers import deployment, execute, query, record

from databases import Database
from kubeproof.cli.main import main
from kubeproof.store import ledger
from kubeproof.store.db import open_store
from kubeproof.store.head import HeadFileError, parse_head
from kubeproof.store.schema import LedgerEntryRow, LedgerHeadRow, ScanRow
from kubeproof.store.signing import key_ring, load_public_key


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    private = tmp_path / "signing.key"
    assert main(["evidence", "keygen", "--output", str(private)]) == 0
    capsys.readouterr()
    return private, Path(f"{private}.pub")


@pytest.fixture
def store_url(database: Database, keys: tuple[Path, Path]) -> Iterator[str]:
    """Three signed scans: entries #1-#3."""
    store = open_store(database.url, signing_key=str(keys[0]))
    try:
        record(store, deployment(privileged=True), day=0)
        record(store, deployment(privileged=False), day=1)
        record(store, deployment(privileged=True), deployment("checkout", uid="b"), day=2)
    finally:
        store.close()
    yield database.url


def export(url: str, output: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> Any:
    assert main(["evidence", "export-head", "--db", url, "--output", str(output), *extra]) == 0
    capsys.readouterr()
    return json.loads(output.read_text())


def verify(url: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(["evidence", "verify", "--db", url, *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rewrite_from(url: str, scan_id: int) -> None:
    """Edit a scan and rehash the chain from its entry on, head included: what someone
    who knows the algorithm and holds the database can do."""
    store = open_store(url)
    try:
        with store.writing() as session:
            scan = session.get(ScanRow, scan_id)
            assert scan is not None
            scan.cluster = "rewritten"
            previous = ledger.GENESIS_HASH
            for entry in session.scalars(select(LedgerEntryRow).order_by(LedgerEntryRow.seq)):
                entry.prev_hash = previous
                entry.entry_hash = ledger.entry_hash(
                    entry.seq,
                    entry.entry_type,
                    entry.recorded_at,
                    previous,
                    ledger._content(session, entry),
                )
                entry.signature = entry.key_id = None
                previous = entry.entry_hash
            head = session.get(LedgerHeadRow, ledger.HEAD_ID)
            assert head is not None
            head.entry_hash = previous
    finally:
        store.close()


def add_exception(url: str, key: Path | None = None) -> None:
    from kubeproof.store.exceptions import NewException
    from kubeproof.store.exceptions import add_exception as add

    new = NewException(
        checks=["pss.privileged"],
        owner="platform",
        reason="migrating",
        expires=date(2099, 1, 1),
        subjects=["Deployment/shop/storefront"],
        namespaces=[],
    )
    store = open_store(url, signing_key=str(key) if key else None)
    try:
        add(store, new, now=datetime(2026, 1, 9, tzinfo=UTC), max_days=40_000)
    finally:
        store.close()


def truncate_to(url: str, seq: int) -> None:
    """Drop the (exception) entries after `seq`, their exceptions, and move the head row
    back: a consistent truncation."""
    execute(
        url,
        f"DELETE FROM ledger WHERE seq > {seq}",
        "DELETE FROM exceptions WHERE id NOT IN "
        "(SELECT exception_id FROM ledger WHERE exception_id IS NOT NULL)",
        f"UPDATE ledger_head SET seq = {seq}, "
        f"entry_hash = (SELECT entry_hash FROM ledger WHERE seq = {seq})",
    )


def test_export_head_prints_the_newest_entry_signed(
    store_url: str, keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evidence", "export-head", "--db", store_url]) == 0
    document = json.loads(capsys.readouterr().out)
    first, last = _hash_at(store_url, 1), _hash_at(store_url, 3)
    assert document == {
        "kubeproofLedgerHead": 1,
        "store": {"firstEntryHash": first},
        "seq": 3,
        "entryHash": last,
        "recordedAt": document["recordedAt"],
        "entries": 3,
    }
    signed = export(store_url, tmp_path / "head.json", capsys, "--signing-key", str(keys[0]))
    assert (
        signed["signature"]["algorithm"] == "Ed25519" and len(signed["signature"]["value"]) == 128
    )
    head = parse_head((tmp_path / "head.json").read_bytes(), "head.json")
    assert head.signature_problem(key_ring([load_public_key(str(keys[1]))])) is None


def _hash_at(url: str, seq: int) -> str:
    [(value,)] = query(url, f"SELECT entry_hash FROM ledger WHERE seq = {seq}")
    return str(value)


def test_expect_head_holds_while_the_store_only_grows(
    store_url: str, keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = tmp_path / "head.json"
    export(store_url, head, capsys, "--signing-key", str(keys[0]))
    store = open_store(store_url, signing_key=str(keys[0]))
    record(store, deployment(privileged=False), day=3)
    store.close()
    code, out, err = verify(
        store_url, capsys, "--expect-head", str(head), "--public-key", str(keys[1])
    )
    assert (code, err) == (0, "") and "4 entries verified" in out


def test_expect_head_catches_a_consistent_truncation(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = tmp_path / "head.json"
    add_exception(store_url)
    export(store_url, head, capsys)
    truncate_to(store_url, 3)
    assert verify(store_url, capsys)[0] == 0  # the chain alone cannot tell
    code, _, err = verify(store_url, capsys, "--expect-head", str(head))
    assert code == 1 and "truncated below the exported head" in err and "#4" in err


def test_expect_head_catches_a_consistent_rewrite(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = tmp_path / "head.json"
    export(store_url, head, capsys)
    rewrite_from(store_url, 2)
    assert verify(store_url, capsys)[0] == 0  # the chain alone cannot tell
    code, _, err = verify(store_url, capsys, "--expect-head", str(head))
    assert code == 1 and "entry #3 no longer has the hash" in err


def test_expect_head_of_another_store_fails(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = tmp_path / "head.json"
    export(store_url, head, capsys)
    other = tmp_path / "other.db"
    store = open_store(f"sqlite:///{other}")
    for day in range(4):
        record(store, deployment(privileged=bool(day % 2)), day=day)
    store.close()
    code, _, err = verify(f"sqlite:///{other}", capsys, "--expect-head", str(head))
    assert code == 1 and "entry #1 is not the first entry" in err


def test_a_tampered_head_document_fails_its_signature(
    store_url: str, keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = tmp_path / "head.json"
    document = export(store_url, head, capsys, "--signing-key", str(keys[0]))
    document["recordedAt"] = "2020-01-01T00:00:00.000000Z"
    head.write_text(json.dumps(document))
    code, _, err = verify(
        store_url, capsys, "--expect-head", str(head), "--public-key", str(keys[1])
    )
    assert code == 1 and "its signature does not verify" in err


def test_since_head_rehashes_only_what_follows_the_trusted_head(
    store_url: str, keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = tmp_path / "head.json"
    export(store_url, head, capsys, "--signing-key", str(keys[0]))
    store = open_store(store_url, signing_key=str(keys[0]))
    record(store, deployment(privileged=False), day=3)
    record(store, deployment(privileged=True), day=4)
    store.close()
    since = ("--since-head", str(head), "--public-key", str(keys[1]))
    code, out, err = verify(store_url, capsys, *since)
    assert (code, err) == (0, "") and "5 entries, #4 on rehashed" in out
    assert verify(store_url, capsys, *since, "--expect-head", str(head))[0] == 0

    # An edit before the head is trusted away (that is what --since-head means) ...
    execute(store_url, "UPDATE results SET message = 'edited' WHERE scan_id = 1")
    assert verify(store_url, capsys, *since)[0] == 0
    assert verify(store_url, capsys)[0] == 1  # ... and a full verification still sees it.
    execute(store_url, "UPDATE results SET message = 'edited' WHERE scan_id = 5")
    code, _, err = verify(store_url, capsys, *since)
    assert code == 1 and "ledger entry #5" in err and "no longer matches its hash" in err
    code, _, err = verify(store_url, capsys, "--since-head", str(head), "-o", "json")
    assert code == 2 and "give --public-key" in err


def test_since_head_refuses_an_unsigned_or_foreign_head(
    store_url: str, keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unsigned = tmp_path / "unsigned.json"
    export(store_url, unsigned, capsys)
    code, _, err = verify(
        store_url, capsys, "--since-head", str(unsigned), "--public-key", str(keys[1])
    )
    assert code == 2 and "is not signed" in err
    signed = tmp_path / "signed.json"
    add_exception(store_url, keys[0])
    export(store_url, signed, capsys, "--signing-key", str(keys[0]))
    truncate_to(store_url, 3)
    code, _, err = verify(
        store_url, capsys, "--since-head", str(signed), "--public-key", str(keys[1])
    )
    assert code == 1 and "no entry #4" in err


def test_export_head_of_an_empty_store_is_a_usage_error(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    open_store(database.url).close()
    assert main(["evidence", "export-head", "--db", database.url]) == 2
    assert "the ledger is empty" in capsys.readouterr().err


def test_unreadable_head_files_are_usage_errors(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    for content in ("not json", "[]", '{"kubeproofLedgerHead": 1, "store": {}}'):
        bad.write_text(content)
        code, _, err = verify(store_url, capsys, "--expect-head", str(bad))
        assert code == 2 and str(bad) in err and "Traceback" not in err
    code, _, err = verify(store_url, capsys, "--expect-head", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read head file" in err


_VALID = {
    "kubeproofLedgerHead": 1,
    "store": {"firstEntryHash": "a" * 64},
    "seq": 3,
    "entryHash": "b" * 64,
    "recordedAt": "2026-01-01T00:00:00.000000Z",
    "entries": 3,
}
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=70),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*_VALID, "signature"]), _JSON, max_size=7))
def test_head_parser_refuses_malformed_fields_cleanly(fields: dict[str, Any]) -> None:
    document = {**_VALID, **fields}
    try:
        head = parse_head(json.dumps(document).encode(), "fuzzed.json")
    except HeadFileError as error:
        assert "fuzzed.json" in str(error)
    else:
        assert head.seq >= 1 and len(head.entry_hash) == 64


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_head_parser_survives_any_bytes(data: bytes) -> None:
    try:
        parse_head(data, "bytes.json")
    except HeadFileError as error:
        assert "bytes.json" in str(error)
