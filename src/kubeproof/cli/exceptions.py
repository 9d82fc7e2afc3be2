"""`kubeproof exceptions add|list|show|revoke`: risk acceptances in the evidence store,
each change chained in the ledger. See docs/exceptions.md."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from kubeproof.cli import database
from kubeproof.cli.errors import EXIT_CLEAN, UsageError
from kubeproof.inventory import Inventory
from kubeproof.risk_acceptance import (
    ANNOTATION,
    DEFAULT_MAX_DAYS,
    ExceptionSpecError,
    Limits,
    RiskException,
    annotation_exceptions,
    apply_exceptions,
    load_files,
    parse_date,
    today_utc,
)
from kubeproof.scan import ScanReport

if TYPE_CHECKING:
    from kubeproof.store.db import Store
    from kubeproof.store.exceptions import StoredException


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "exceptions",
        help="accepted risks: failing checks excepted until an expiry date",
        description="Manage exceptions (risk acceptances) in the evidence store. While "
        "valid, a failing result they cover is reported as excepted (never hidden); once "
        "expired it fails again. Every change is chained in the ledger. Exit codes: 0, "
        "2 usage or database errors.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="accept a risk until a date")
    add.add_argument(
        "--check",
        dest="checks",
        action="append",
        default=[],
        required=True,
        metavar="ID",
        help="check id or glob (pss.privileged, pss.*); repeatable",
    )
    add.add_argument(
        "--subject",
        dest="subjects",
        action="append",
        default=[],
        metavar="KIND/NS/NAME",
        help="Kind/namespace/name or Kind/name, optionally [container]; globs allowed; repeatable",
    )
    add.add_argument(
        "--namespace",
        dest="namespaces",
        action="append",
        default=[],
        metavar="NS",
        help="namespace (glob allowed); repeatable",
    )
    add.add_argument(
        "--selector",
        metavar="KEY=VALUE,...",
        help="label selector (matchLabels) on the workload's or object's labels",
    )
    add.add_argument("--owner", required=True, help="who owns the accepted risk")
    add.add_argument("--reason", required=True, help="why the risk is accepted")
    add.add_argument("--ticket", help="ticket or change reference")
    add.add_argument("--approver", help="who approved the exception")
    add.add_argument("--expires", required=True, metavar="YYYY-MM-DD", help="expiry date")
    add.add_argument(
        "--max-days",
        type=int,
        default=DEFAULT_MAX_DAYS,
        metavar="N",
        help=f"refuse an expiry more than N days away (default {DEFAULT_MAX_DAYS})",
    )
    _common(add)
    database.add_signing_key_argument(add)
    add.set_defaults(run=run_add)

    listing = actions.add_parser("list", help="exceptions and whether they still hold")
    listing.add_argument(
        "--all", action="store_true", help="include expired and revoked exceptions"
    )
    _common(listing)
    listing.set_defaults(run=run_list)

    show = actions.add_parser("show", help="one exception in full")
    show.add_argument("id", metavar="EXC-N")
    _common(show)
    show.set_defaults(run=run_show)

    revoke = actions.add_parser("revoke", help="withdraw an exception before it expires")
    revoke.add_argument("id", metavar="EXC-N")
    revoke.add_argument("--by", required=True, help="who revokes it")
    revoke.add_argument("--reason", required=True, help="why")
    _common(revoke)
    database.add_signing_key_argument(revoke)
    revoke.set_defaults(run=run_revoke)


def _common(parser: Any) -> None:
    database.add_db_argument(parser)
    parser.add_argument(
        "-o", "--format", default="table", choices=["table", "json"], help="output format"
    )


def run_add(arguments: argparse.Namespace) -> int:
    from kubeproof.store.exceptions import NewException, add_exception, display_id

    try:
        expires = parse_date(arguments.expires, "--expires")
    except ExceptionSpecError as error:
        raise UsageError(str(error)) from None
    new = NewException(
        checks=arguments.checks,
        owner=arguments.owner,
        reason=arguments.reason,
        expires=expires,
        subjects=arguments.subjects,
        namespaces=arguments.namespaces,
        selector=arguments.selector,
        ticket=arguments.ticket,
        approver=arguments.approver,
    )
    # Validate before touching the database: a bad flag must not create a store.
    from kubeproof.store.exceptions import validated_values

    now = datetime.now(UTC)
    try:
        validated_values(new, now=now, max_days=arguments.max_days)
    except ExceptionSpecError as error:
        raise UsageError(str(error)) from None
    store = database.open_for_writing(arguments)
    try:
        added = _writing(
            store, lambda: add_exception(store, new, now=now, max_days=arguments.max_days)
        )
    finally:
        store.close()
    if arguments.format == "json":
        _print_json(
            {
                "id": display_id(added.id),
                "ledgerEntry": added.ledger_seq,
                "ledgerHash": added.ledger_hash,
            }
        )
    else:
        print(
            f"added exception {display_id(added.id)} (expires {expires.isoformat()}); "
            f"ledger entry #{added.ledger_seq} {added.ledger_hash[:16]}"
        )
    return EXIT_CLEAN


def run_revoke(arguments: argparse.Namespace) -> int:
    from kubeproof.store.exceptions import display_id, parse_id, revoke_exception

    exception_id = _id(arguments.id, parse_id)
    store = database.open_for_writing(arguments)
    try:
        revoked = _writing(
            store,
            lambda: revoke_exception(
                store,
                exception_id,
                by=arguments.by,
                reason=arguments.reason,
                now=datetime.now(UTC),
            ),
        )
    finally:
        store.close()
    if arguments.format == "json":
        _print_json(
            {
                "id": display_id(revoked.id),
                "ledgerEntry": revoked.ledger_seq,
                "ledgerHash": revoked.ledger_hash,
            }
        )
    else:
        print(
            f"revoked exception {display_id(revoked.id)}; "
            f"ledger entry #{revoked.ledger_seq} {revoked.ledger_hash[:16]}"
        )
    return EXIT_CLEAN


def run_list(arguments: argparse.Namespace) -> int:
    from kubeproof.store.exceptions import ACTIVE, list_exceptions

    store = database.open_for_reading(arguments)
    try:
        with store.reading() as session:
            states = None if arguments.all else frozenset({ACTIVE})
            found = list_exceptions(session, now=datetime.now(UTC), states=states)
            if arguments.format == "json":
                _print_json({"exceptions": [e.as_dict() for e in found]})
            else:
                _print_list(found, arguments.all)
    finally:
        store.close()
    return EXIT_CLEAN


def run_show(arguments: argparse.Namespace) -> int:
    from kubeproof.store.exceptions import ExceptionNotFound, get_exception, parse_id

    exception_id = _id(arguments.id, parse_id)
    store = database.open_for_reading(arguments)
    try:
        with store.reading() as session:
            try:
                found = get_exception(session, exception_id, now=datetime.now(UTC))
            except ExceptionNotFound as error:
                raise UsageError(str(error)) from None
            data = found.as_dict()
    finally:
        store.close()
    if arguments.format == "json":
        _print_json(data)
        return EXIT_CLEAN
    for key, value in data.items():
        if value in (None, [], {}):
            continue
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        elif isinstance(value, dict):
            value = orjson.dumps(value).decode()
        print(f"{key + ':':12} {value}")
    return EXIT_CLEAN


def _id(text: str, parse: Any) -> int:
    try:
        value: int = parse(text)
    except ExceptionSpecError as error:
        raise UsageError(str(error)) from None
    return value


def _writing(store: Store, action: Any) -> Any:
    """Run a write; a mistake (unknown id, bad value) or a database failure is a usage
    error that says nothing was written."""
    from sqlalchemy import exc

    from kubeproof.store.db import describe
    from kubeproof.store.exceptions import ExceptionNotFound

    try:
        return action()
    except (ExceptionSpecError, ExceptionNotFound) as error:
        raise UsageError(str(error.args[0])) from None
    except exc.DBAPIError as error:
        raise UsageError(
            f"cannot write to {store.url}: {describe(error)} (nothing was written)"
        ) from None


def _print_list(found: list[StoredException], every: bool) -> None:
    if not found:
        print("no exceptions" if every else "no active exceptions (--all lists expired ones)")
        return
    rows = []
    for item in found:
        data = item.as_dict()
        scope = [*data["subjects"], *(f"ns:{n}" for n in data["namespaces"])]
        if data["selector"]:
            scope.append("selector:" + orjson.dumps(data["selector"]).decode())
        rows.append(
            [
                item.id,
                item.state,
                ",".join(data["checks"]),
                " ".join(scope),
                data["owner"],
                data["expires"],
                data["ticket"] or "-",
            ]
        )
    headers = ["ID", "STATE", "CHECKS", "SCOPE", "OWNER", "EXPIRES", "TICKET"]
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=False)]
    for line in [headers, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=False)).rstrip())


def _print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


# --- applying exceptions in `kubeproof scan` -----------------------------------------------


def add_scan_arguments(parser: Any) -> None:
    parser.add_argument(
        "--exceptions",
        dest="exception_files",
        action="append",
        default=[],
        metavar="FILE",
        help="YAML file of exceptions (risk acceptances) to apply; repeatable",
    )
    parser.add_argument(
        "--exception-max-days",
        type=int,
        default=DEFAULT_MAX_DAYS,
        metavar="N",
        help="refuse file and annotation exceptions whose expiry is more than N days after "
        f"their created date or today (default {DEFAULT_MAX_DAYS})",
    )
    parser.add_argument(
        "--no-annotation-exceptions",
        dest="annotation_exceptions",
        action="store_false",
        help=f"ignore exceptions declared in {ANNOTATION} annotations",
    )


def declared_exceptions(arguments: argparse.Namespace, now: datetime) -> list[RiskException]:
    """The exceptions of --exceptions FILE, read before scanning: a bad file fails fast."""
    if arguments.exception_max_days < 1:
        raise UsageError("--exception-max-days must be at least 1")
    limits = Limits(today_utc(now), arguments.exception_max_days)
    try:
        return load_files(arguments.exception_files, limits)
    except ExceptionSpecError as error:
        raise UsageError(f"--exceptions {error}") from None


def apply_to_scan(
    arguments: argparse.Namespace,
    report: ScanReport,
    inventory: Inventory,
    declared: list[RiskException],
    store: Store | None,
    now: datetime,
) -> None:
    """Apply file, annotation and (when recording) stored exceptions to the scan's results,
    and say on stderr what they did: excepted results are counted, never hidden."""
    found = list(declared)
    if arguments.annotation_exceptions:
        annotated = annotation_exceptions(
            inventory, Limits(today_utc(now), arguments.exception_max_days)
        )
        found.extend(annotated.exceptions)
        for problem in annotated.problems:
            print(f"kubeproof: warning: {problem}", file=sys.stderr)
    if store is not None:
        found.extend(_stored(store, now))
    applied = apply_exceptions(report.results, found, now=now, inventory=inventory)
    for exception_id, count in sorted(applied.excepted.items()):
        item = applied.by_id[exception_id]
        print(
            f"kubeproof: {count} failing result(s) excepted by {item.describe()}",
            file=sys.stderr,
        )
    for exception_id, count in sorted(applied.expired.items()):
        expired_on = applied.by_id[exception_id].expires.isoformat()
        print(
            f"kubeproof: warning: exception {exception_id} expired on {expired_on}: "
            f"{count} result(s) it covered fail again",
            file=sys.stderr,
        )


def _stored(store: Store, now: datetime) -> list[RiskException]:
    from sqlalchemy import exc

    from kubeproof.store.db import describe
    from kubeproof.store.exceptions import scan_exceptions

    try:
        return scan_exceptions(store, now=now)
    except ExceptionSpecError as error:
        raise UsageError(
            f"cannot apply the exceptions in {store.url}: {error} "
            "(run kubeproof evidence verify; nothing was recorded)"
        ) from None
    except exc.DBAPIError as error:
        raise UsageError(
            f"cannot read exceptions from {store.url}: {describe(error)} (nothing was recorded)"
        ) from None
