"""`kubeproof evidence verify`: recompute the ledger's hash chain and say whether the
recorded evidence is as it was recorded."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from kubeproof.cli import database
from kubeproof.cli.errors import EXIT_CLEAN, EXIT_FAILURES

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
        "now and check the chain. Exit codes: 0 intact, 1 the evidence was altered (the "
        "message names the first bad entry), 2 usage or database errors.",
    )
    database.add_db_argument(verify)
    verify.add_argument(
        "--expect",
        metavar="HASH",
        help="a ledger hash printed earlier (kept outside the database): fail unless the "
        "chain still contains it",
    )
    verify.add_argument(
        "-o", "--format", default="table", choices=["table", "json"], help="output format"
    )
    verify.set_defaults(run=run_verify)


def run_verify(arguments: argparse.Namespace) -> int:
    from kubeproof.store.ledger import verify

    store = database.open_for_reading(arguments)
    try:
        with store.reading() as session:
            result = verify(session, expect=arguments.expect)
    finally:
        store.close()
    if arguments.format == "json":
        data = {
            "intact": result.intact,
            "entries": result.entries,
            "head": result.head,
            "problem": result.problem,
        }
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif result.intact:
        print(f"ledger intact: {result.entries} entries verified in {store.url}")
        print(f"head {result.head}")
    if not result.intact:
        print(f"kubeproof: evidence altered: {result.problem}", file=sys.stderr)
        print(
            f"kubeproof: the first {result.entries} entries verified (up to {result.head[:16]})",
            file=sys.stderr,
        )
        return EXIT_TAMPERED
    return EXIT_CLEAN
