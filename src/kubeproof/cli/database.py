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
    from kubeproof.inventory.security_spec import ApprovedBaselines
    from kubeproof.store.db import Store

DB_HELP = (
    f"evidence store: sqlite:///FILE, postgresql://USER:PASSWORD@HOST/DB or a file path "
    f"(default ${ENVIRONMENT_VARIABLE}, else $XDG_DATA_HOME/kubeproof/kubeproof.db)"
)


SIGNING_KEY_HELP = (
    "sign every ledger entry this command appends with this Ed25519 private key file "
    "(from `kubeproof evidence keygen`; default $KUBEPROOF_SIGNING_KEY, else unsigned)"
)


def add_db_argument(parser: Any) -> None:
    parser.add_argument("--db", metavar="URL", help=DB_HELP)


def add_signing_key_argument(parser: Any) -> None:
    """For commands that append to the ledger; open_for_writing() uses it."""
    parser.add_argument("--signing-key", metavar="FILE", help=SIGNING_KEY_HELP)


def open_for_writing(arguments: argparse.Namespace) -> Store:
    """The store to append evidence to, with the signing key (--signing-key or
    $KUBEPROOF_SIGNING_KEY) loaded: a bad key fails before anything is written."""
    from kubeproof.store import StoreError
    from kubeproof.store.db import open_store

    try:
        return open_store(arguments.db, signing_key=getattr(arguments, "signing_key", None))
    except StoreError as error:
        raise UsageError(str(error)) from None


def open_for_reading(arguments: argparse.Namespace) -> Store:
    from kubeproof.store import StoreError
    from kubeproof.store.db import open_store

    try:
        return open_store(arguments.db, create=False)
    except StoreError as error:
        raise UsageError(str(error)) from None


def recording_store(arguments: argparse.Namespace) -> Store | None:
    """The store a scan records into (--db, --record or $KUBEPROOF_DB), opened before the
    scan runs so that a bad URL or an unreachable database fails before any output."""
    if not (arguments.db or arguments.record or os.environ.get(ENVIRONMENT_VARIABLE)):
        return None
    return open_for_writing(arguments)


def approved_baselines(store: Store | None, cluster: str) -> ApprovedBaselines | None:
    """The baselines a recorded scan compares workloads with (None when not recording:
    drift.unapproved-change then does not apply)."""
    if store is None:
        return None
    from sqlalchemy import exc

    from kubeproof.store.baselines import BaselineError, load_approved
    from kubeproof.store.db import describe

    try:
        return load_approved(store, cluster)
    except BaselineError as error:
        raise UsageError(f"cannot compare with the baselines in {store.url}: {error}") from None
    except exc.DBAPIError as error:
        raise UsageError(
            f"cannot read baselines from {store.url}: {describe(error)} (nothing was recorded)"
        ) from None


def record(store: Store, report: ScanReport, source: Source) -> None:
    """Record the scan in one transaction; on any failure nothing is recorded."""
    from sqlalchemy import exc

    from kubeproof.store.db import describe
    from kubeproof.store.record import present_subjects, record_scan, subject_identities

    present = present_subjects(source.inventory)
    identities = subject_identities(source.inventory)
    try:
        recorded = record_scan(
            store, report, cluster=source.cluster_name, present=present, identities=identities
        )
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
