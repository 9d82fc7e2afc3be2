"""The --db option that every evidence-store command shares, and recording a scan."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from kubeproof.cli.errors import UsageError
from kubeproof.cli.inputs import Source
from kubeproof.scan import ScanReport
from kubeproof.store import ENVIRONMENT_VARIABLE

# SQLAlchemy loads only when a command uses the store: `kubeproof scan` without --db
# must start as fast as before.
if TYPE_CHECKING:
    from kubeproof.store.db import Store

DB_HELP = (
    f"evidence store: sqlite:///FILE, postgresql://USER:PASSWORD@HOST/DB or a file path "
    f"(default ${ENVIRONMENT_VARIABLE}, else $XDG_DATA_HOME/kubeproof/kubeproof.db)"
)


def add_db_argument(parser: Any) -> None:
    parser.add_argument("--db", metavar="URL", help=DB_HELP)


def open_for_reading(arguments: argparse.Namespace) -> Store:
    from kubeproof.store.db import StoreError, open_store

    try:
        return open_store(arguments.db, create=False)
    except StoreError as error:
        raise UsageError(str(error)) from None


def recording_store(arguments: argparse.Namespace) -> Store | None:
    """The store a scan records into (--db, --record or $KUBEPROOF_DB), opened before the
    scan runs so that a bad URL or an unreachable database fails before any output."""
    if not (arguments.db or arguments.record or os.environ.get(ENVIRONMENT_VARIABLE)):
        return None
    from kubeproof.store.db import StoreError, open_store

    try:
        return open_store(arguments.db)
    except StoreError as error:
        raise UsageError(str(error)) from None


def record(store: Store, report: ScanReport, source: Source) -> None:
    """Record the scan in one transaction; on any failure nothing is recorded."""
    from sqlalchemy import exc

    from kubeproof.store.db import describe
    from kubeproof.store.record import present_subjects, record_scan

    present = present_subjects(source.inventory)
    try:
        recorded = record_scan(store, report, cluster=source.cluster_name, present=present)
    except exc.DBAPIError as error:
        raise UsageError(
            f"cannot record the scan in {store.url}: {describe(error)} (nothing was recorded)"
        ) from None
    finally:
        store.close()
    print(
        f"kubeproof: recorded scan #{recorded.scan_id} of {source.cluster_name} in {store.url}: "
        f"{recorded.results} results; findings {recorded.opened} opened, "
        f"{recorded.reopened} reopened, {recorded.resolved} resolved, "
        f"{recorded.deleted} closed (subject deleted); "
        f"ledger entry #{recorded.ledger_seq} {recorded.ledger_hash[:16]}",
        file=sys.stderr,
    )
