"""`kubeproof vulndb update` and `kubeproof vulndb status`: the local OSV database that
`kubeproof image scan` matches against. Exit codes: 0 done, 2 usage or input errors (for
update: any ecosystem that could not be loaded; the others are loaded all the same)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubeproof.cli.errors import EXIT_CLEAN, EXIT_USAGE, UsageError
from kubeproof.vulndb.download import DEFAULT_ECOSYSTEMS, DEFAULT_SOURCE, update
from kubeproof.vulndb.store import SourceStatus, VulnDb, VulnDbError, default_path


def add_vulndb_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--vulndb",
        metavar="PATH",
        type=Path,
        help="vulnerability database file (default $KUBEPROOF_VULNDB, else "
        "$XDG_CACHE_HOME/kubeproof/osv.sqlite3)",
    )


def vulndb_path(arguments: argparse.Namespace) -> Path:
    chosen: Path | None = arguments.vulndb
    if chosen is None and os.environ.get("KUBEPROOF_VULNDB"):
        chosen = Path(os.environ["KUBEPROOF_VULNDB"])
    return chosen or default_path()


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "vulndb",
        help="the local OSV vulnerability database (update, status)",
        description="Download OSV vulnerability data and show its age. Exit codes: 0 done, "
        "2 usage or input errors.",
    )
    actions = parser.add_subparsers(dest="vulndb_command", metavar="ACTION", required=True)
    updating = actions.add_parser(
        "update",
        help="download OSV bulk archives into the local database",
        description="Download <SOURCE>/<ECOSYSTEM>/all.zip for each ecosystem and replace "
        "that ecosystem's data in the local database.",
    )
    updating.add_argument(
        "--source",
        metavar="URL",
        default=DEFAULT_SOURCE,
        help="base URL of the OSV archives (default: the public OSV bucket)",
    )
    updating.add_argument(
        "--ecosystem",
        metavar="NAME",
        action="append",
        help=f"an OSV ecosystem, repeatable (default: {', '.join(DEFAULT_ECOSYSTEMS)})",
    )
    updating.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="network timeout (default 120)",
    )
    add_vulndb_argument(updating)
    updating.set_defaults(run=run_update)
    status = actions.add_parser("status", help="age and size of the local database")
    status.add_argument("-o", "--format", choices=("table", "json"), default="table")
    add_vulndb_argument(status)
    status.set_defaults(run=run_status)


def run_update(arguments: argparse.Namespace) -> int:
    ecosystems = tuple(arguments.ecosystem or DEFAULT_ECOSYSTEMS)
    try:
        with VulnDb(vulndb_path(arguments), create=True) as db:
            results = update(db, arguments.source, ecosystems, arguments.timeout)
    except VulnDbError as error:
        raise UsageError(str(error)) from None
    failed = False
    for result in results:
        if result.error:
            failed = True
            print(
                f"{result.ecosystem}: FAILED: {result.error} (previous data kept)", file=sys.stderr
            )
            continue
        print(
            f"{result.ecosystem}: {result.stored} advisories loaded"
            + (f", {result.rejected} rejected" if result.rejected else "")
        )
        for problem in result.problems:
            print(f"  rejected: {problem}", file=sys.stderr)
        failed = failed or (result.stored == 0 and result.rejected > 0)
    return EXIT_USAGE if failed else EXIT_CLEAN


def age_text(updated: datetime, now: datetime | None = None) -> str:
    seconds = max(0, int(((now or datetime.now(UTC)) - updated).total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400 * 2:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def status_as_dict(status: SourceStatus) -> dict[str, Any]:
    return {
        "ecosystem": status.source,
        "url": status.url,
        "updated_at": status.updated_at.isoformat(),
        "age_seconds": int((datetime.now(UTC) - status.updated_at).total_seconds()),
        "advisories": status.advisories,
        "rejected": status.rejected,
    }


def run_status(arguments: argparse.Namespace) -> int:
    try:
        with VulnDb(vulndb_path(arguments)) as db:
            sources = db.sources()
    except VulnDbError as error:
        raise UsageError(str(error)) from None
    if arguments.format == "json":
        print(
            json.dumps(
                {
                    "database": str(vulndb_path(arguments)),
                    "ecosystems": [status_as_dict(s) for s in sources],
                },
                indent=2,
            )
        )
        return EXIT_CLEAN
    print(f"database: {vulndb_path(arguments)}")
    if not sources:
        print("no data: run `kubeproof vulndb update`")
    for status in sources:
        print(
            f"{status.source:<10} {status.advisories:>8} advisories  updated "
            f"{status.updated_at:%Y-%m-%d %H:%M} UTC ({age_text(status.updated_at)} ago)"
            + (f"  {status.rejected} rejected" if status.rejected else "")
        )
    return EXIT_CLEAN
