"""`kubeproof evidence verify|keygen|export-head`: check the ledger's hash chain and its
signatures, make a signing key, and export the head for anchoring elsewhere."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from kubeproof.cli import database
from kubeproof.cli.errors import EXIT_CLEAN, EXIT_FAILURES, UsageError

if TYPE_CHECKING:
    from kubeproof.store.head import ExportedHead
    from kubeproof.store.ledger import Verification
    from kubeproof.store.signing import PublicKey

EXIT_TAMPERED = EXIT_FAILURES


def register(commands: Any) -> None:
    evidence = commands.add_parser(
        "evidence",
        help="check the evidence store's tamper-evident ledger",
        description="Work with the evidence that `kubeproof scan --db` records.",
    )
    actions = evidence.add_subparsers(dest="action", metavar="ACTION", required=True)
    verify = actions.add_parser(
        "verify",
        help="recompute the ledger's hash chain over every recorded scan and result",
        description="Recompute every ledger entry from the scans and results as they are "
        "now and check the chain (and, with --public-key, every entry's signature). Exit "
        "codes: 0 intact, 1 the evidence was altered (the message names the first bad "
        "entry), 2 usage or database errors.",
    )
    database.add_db_argument(verify)
    verify.add_argument(
        "--expect",
        metavar="HASH",
        help="a ledger hash printed earlier (kept outside the database): fail unless the "
        "chain still contains it",
    )
    verify.add_argument(
        "--expect-head",
        metavar="FILE",
        help="a head from `evidence export-head`: fail unless the chain still holds that "
        "entry with that hash (its signature is checked when --public-key is given)",
    )
    verify.add_argument(
        "--since-head",
        metavar="FILE",
        help="a signed head from `evidence export-head`: trust the chain up to it and "
        "rehash only the entries after it (needs --public-key)",
    )
    verify.add_argument(
        "--public-key",
        metavar="FILE",
        action="append",
        default=[],
        help="an Ed25519 public key (FILE.pub from `evidence keygen`; repeat for rotated "
        "keys): every signed entry must verify with one, and no entry after the first "
        "signed one may be unsigned",
    )
    verify.add_argument(
        "-o", "--format", default="table", choices=["table", "json"], help="output format"
    )
    verify.set_defaults(run=run_verify)

    keygen = actions.add_parser(
        "keygen",
        help="write a new Ed25519 key pair for signing ledger entries",
        description="Write a new Ed25519 private key to FILE (mode 0600, PEM) and its "
        "public key to FILE.pub. Give the private key to the commands that record "
        "(--signing-key or $KUBEPROOF_SIGNING_KEY) and the public key to `evidence verify`.",
    )
    keygen.add_argument("--output", metavar="FILE", required=True, help="private key file")
    keygen.set_defaults(run=run_keygen)

    export = actions.add_parser(
        "export-head",
        help="print the ledger's head as JSON, signed if a key is given, to keep elsewhere",
        description="Print the newest ledger entry (its number and hash, when it was "
        "recorded, the number of entries and the store's first entry) as a JSON document "
        "to keep outside the database; `evidence verify --expect-head FILE` checks it later.",
    )
    database.add_db_argument(export)
    database.add_signing_key_argument(export)
    export.add_argument("--output", metavar="FILE", help="write here instead of stdout")
    export.set_defaults(run=run_export_head)


def _public_keys(paths: list[str]) -> list[PublicKey]:
    from kubeproof.store.signing import SigningKeyError, load_public_key

    try:
        return [load_public_key(path) for path in paths]
    except SigningKeyError as error:
        raise UsageError(str(error)) from None


def _head(path: str | None, flag: str) -> ExportedHead | None:
    from kubeproof.store.head import HeadFileError, read_head

    if path is None:
        return None
    try:
        return read_head(path)
    except HeadFileError as error:
        raise UsageError(f"{flag}: {error}") from None


def run_verify(arguments: argparse.Namespace) -> int:
    from kubeproof.store.ledger import verify
    from kubeproof.store.signing import key_ring

    keys = _public_keys(arguments.public_key)
    expect_head = _head(arguments.expect_head, "--expect-head")
    since = _head(arguments.since_head, "--since-head")
    if since is not None:
        if not keys:
            raise UsageError("--since-head trusts a signed head: give --public-key to check it")
        if arguments.expect:
            raise UsageError("--expect cannot be checked with --since-head: use --expect-head")
        if expect_head is not None and expect_head.seq < since.seq:
            raise UsageError(
                f"--expect-head names entry #{expect_head.seq}, before the trusted head "
                f"#{since.seq} of --since-head: it cannot be checked without rehashing it"
            )
        problem = since.signature_problem(key_ring(keys))
        if problem is not None:
            raise UsageError(f"--since-head: {problem}")
    head_problem = None
    if expect_head is not None and keys and expect_head.signature is not None:
        head_problem = expect_head.signature_problem(key_ring(keys))
    store = database.open_for_reading(arguments)
    try:
        with store.reading() as session:
            result = verify(
                session,
                expect=arguments.expect,
                public_keys=keys,
                expect_head=expect_head,
                since=since,
            )
    finally:
        store.close()
    problem = result.problem or head_problem
    if arguments.format == "json":
        data = {
            "intact": problem is None,
            "entries": result.entries,
            "head": result.head,
            "rehashedFrom": result.rehashed_from,
            "signed": result.signed,
            "keyIds": list(result.key_ids),
            "signaturesChecked": result.signatures_checked and problem is None,
            "problem": problem,
        }
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif problem is None:
        _print_intact(result, store.url)
    if problem is not None:
        print(f"kubeproof: evidence altered: {problem}", file=sys.stderr)
        print(
            f"kubeproof: the first {result.entries} entries verified (up to {result.head[:16]})",
            file=sys.stderr,
        )
        return EXIT_TAMPERED
    return EXIT_CLEAN


def _print_intact(result: Verification, url: str) -> None:
    if result.rehashed_from > 1:
        print(
            f"ledger intact: {result.entries} entries, #{result.rehashed_from} on rehashed "
            f"(those before trusted from the signed head) in {url}"
        )
    else:
        print(f"ledger intact: {result.entries} entries verified in {url}")
    if result.signed:
        ids = ", ".join(result.key_ids)
        if result.signatures_checked:
            print(f"signatures: {result.signed} entries signed by key {ids}, all verified")
        else:
            print(
                f"signatures: {result.signed} entries signed by key {ids}, not checked "
                "(give --public-key)"
            )
    print(f"head {result.head}")


def run_keygen(arguments: argparse.Namespace) -> int:
    from kubeproof.store.signing import SigningKeyError, generate_key_pair

    try:
        public_path, key_id = generate_key_pair(Path(arguments.output).expanduser())
    except SigningKeyError as error:
        raise UsageError(str(error)) from None
    print(f"wrote private key {arguments.output} (mode 0600) and public key {public_path}")
    print(f"key id {key_id}")
    return EXIT_CLEAN


def run_export_head(arguments: argparse.Namespace) -> int:
    from kubeproof.store.head import EmptyLedger, current_head, dumps
    from kubeproof.store.signing import SigningKeyError, load_signer

    try:
        signer = load_signer(arguments.signing_key)
    except SigningKeyError as error:
        raise UsageError(str(error)) from None
    store = database.open_for_reading(arguments)
    try:
        with store.reading() as session:
            head = current_head(session, signer)
    except EmptyLedger as error:
        raise UsageError(f"{store.url}: {error}") from None
    finally:
        store.close()
    document = dumps(head)
    if arguments.output is None:
        sys.stdout.write(document)
        return EXIT_CLEAN
    try:
        Path(arguments.output).expanduser().write_text(document)
    except OSError as error:
        raise UsageError(f"cannot write {arguments.output}: {error.strerror or error}") from None
    print(f"wrote ledger head #{head.seq} {head.entry_hash[:16]} to {arguments.output}")
    return EXIT_CLEAN
