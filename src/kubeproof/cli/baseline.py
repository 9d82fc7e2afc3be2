"""`kubeproof baseline approve|list|show|revoke`: approved workload baselines in the
evidence store, each decision chained in the ledger. See docs/baseline.md."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from kubeproof.cli import database
from kubeproof.cli.errors import EXIT_CLEAN, UsageError
from kubeproof.cli.inputs import add_input_arguments, load_source

if TYPE_CHECKING:
    from kubeproof.inventory import Inventory, Workload
    from kubeproof.inventory.security_spec import WorkloadKey
    from kubeproof.store.baselines import Decider, Decision
    from kubeproof.store.db import Store

T = TypeVar("T")


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "baseline",
        help="approved baselines: the workload specs a change must be approved against",
        description="Record the approved security spec of workloads (images, security "
        "contexts, capabilities, host namespaces and mounts, service account, ports). A "
        "later change that was not approved fails drift.unapproved-change in `kubeproof "
        "scan --db` and in the agent until approved again. Every decision is chained in "
        "the ledger. Exit codes: 0, 2 usage or database errors.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    approve = actions.add_parser(
        "approve",
        help="approve the current spec of a workload or of every workload of a namespace",
        description="Approve the spec of SUBJECT (Kind/namespace/name, the top owner: "
        "Deployment, StatefulSet, DaemonSet, CronJob, Job or bare Pod) or, with "
        "--namespace, of every workload in NS, as read from PATH... or --cluster (the same "
        "inputs as `kubeproof scan`). Without --namespace the first word is SUBJECT.",
    )
    approve.add_argument("--namespace", metavar="NS", help="every workload of this namespace")
    _decider(approve)
    add_input_arguments(approve)
    _common(approve)
    approve.set_defaults(run=run_approve)

    revoke = actions.add_parser("revoke", help="withdraw approved baselines")
    revoke.add_argument("subjects", nargs="*", metavar="SUBJECT", help="Kind/namespace/name")
    revoke.add_argument("--namespace", metavar="NS", help="every baseline in force in NS")
    revoke.add_argument("--cluster-name", metavar="NAME", required=True, help="the cluster")
    _decider(revoke)
    _common(revoke)
    revoke.set_defaults(run=run_revoke)

    listing = actions.add_parser("list", help="baselines in force")
    listing.add_argument("--cluster-name", metavar="NAME", help="only this cluster")
    listing.add_argument("--all", action="store_true", help="include revoked baselines")
    _common(listing)
    listing.set_defaults(run=run_list)

    show = actions.add_parser("show", help="every decision about one workload, with its spec")
    show.add_argument("subject", metavar="SUBJECT", help="Kind/namespace/name")
    show.add_argument("--cluster-name", metavar="NAME", help="only this cluster")
    _common(show)
    show.set_defaults(run=run_show)


def _decider(parser: Any) -> None:
    parser.add_argument("--by", required=True, help="who approves or revokes")
    parser.add_argument("--reason", required=True, help="why")
    parser.add_argument("--ticket", help="change ticket or reference")


def _common(parser: Any) -> None:
    database.add_db_argument(parser)
    parser.add_argument(
        "-o", "--format", default="table", choices=["table", "json"], help="output format"
    )


def run_approve(arguments: argparse.Namespace) -> int:
    from kubeproof.store.baselines import approve

    subject = None
    if arguments.namespace is None:
        if not arguments.paths or (arguments.cluster and len(arguments.paths) != 1):
            raise UsageError("give SUBJECT (Kind/namespace/name) or --namespace NS")
        subject = _key(arguments.paths.pop(0))
    decider = _checked_decider(arguments)
    store = _open_for_writing(arguments)  # before reading the inputs: a bad --db fails fast
    try:
        source = load_source(arguments)
        for problem in source.errors:
            raise UsageError(f"input error: {problem} (nothing was approved)")
        workloads = _chosen(source.inventory, subject, arguments.namespace)
        now = datetime.now(UTC)
        decision = _writing(
            store, lambda: approve(store, source.cluster_name, workloads, decider, now=now)
        )
    finally:
        store.close()
    _say_decided("approved", decision, [str(w.subject) for w in workloads], arguments)
    return EXIT_CLEAN


def _chosen(
    inventory: Inventory, subject: WorkloadKey | None, namespace: str | None
) -> list[Workload]:
    workloads = list(inventory.workloads)
    if subject is not None:
        kind, ns, name = subject
        found = [
            w
            for w in workloads
            if (w.subject.kind, w.subject.namespace or "", w.subject.name) == subject
        ]
        if not found:
            where = f"{kind}/{ns}/{name}" if ns else f"{kind}/{name}"
            raise UsageError(
                f"{where}: no such workload in the input (name the top owner, e.g. the "
                "Deployment rather than its pods); nothing was approved"
            )
        return found
    found = [w for w in workloads if (w.subject.namespace or "") == namespace]
    if not found:
        raise UsageError(f"namespace {namespace}: no workloads in the input; nothing was approved")
    return found


def run_revoke(arguments: argparse.Namespace) -> int:
    from kubeproof.store.baselines import revoke

    if not arguments.subjects and arguments.namespace is None:
        raise UsageError("give SUBJECT... or --namespace NS")
    keys = [_key(text) for text in arguments.subjects]
    decider = _checked_decider(arguments)
    store = _open_for_writing(arguments)
    try:
        now = datetime.now(UTC)
        decision = _writing(
            store,
            lambda: revoke(
                store,
                arguments.cluster_name,
                keys,
                decider,
                now=now,
                namespace=arguments.namespace,
            ),
        )
    finally:
        store.close()
    _say_decided("revoked", decision, [], arguments)
    return EXIT_CLEAN


def run_list(arguments: argparse.Namespace) -> int:
    from kubeproof.store.baselines import current_baselines, display_id, row_dict

    store = database.open_for_reading(arguments)
    try:
        with store.reading() as session:
            rows = current_baselines(session, arguments.cluster_name, every=arguments.all)
            data = [row_dict(r) for r in rows]
            ids = [display_id(r.id) for r in rows]
    finally:
        store.close()
    if arguments.format == "json":
        _print_json({"baselines": data})
        return EXIT_CLEAN
    if not data:
        print("no baselines in force" if not arguments.all else "no baselines")
        return EXIT_CLEAN
    table = [
        [
            i,
            d["cluster"],
            d["subject"],
            d["action"],
            d["decidedBy"],
            d["decidedAt"][:16],
            d["ticket"] or "-",
        ]
        for i, d in zip(ids, data, strict=True)
    ]
    _print_table(["ID", "CLUSTER", "SUBJECT", "STATE", "BY", "AT (UTC)", "TICKET"], table)
    return EXIT_CLEAN


def run_show(arguments: argparse.Namespace) -> int:
    from kubeproof.store.baselines import row_dict, subject_rows

    key = _key(arguments.subject)
    store = database.open_for_reading(arguments)
    try:
        with store.reading() as session:
            rows = [
                row_dict(r, with_spec=True)
                for r in subject_rows(session, key, arguments.cluster_name)
            ]
    finally:
        store.close()
    if not rows:
        raise UsageError(f"{arguments.subject}: no baseline decisions in the evidence store")
    if arguments.format == "json":
        _print_json({"subject": arguments.subject, "decisions": rows})
        return EXIT_CLEAN
    for row in rows:
        print(
            f"{row['id']} {row['action']} {row['decidedAt']} by {row['decidedBy']} "
            f"({row['reason']}{'; ticket ' + row['ticket'] if row['ticket'] else ''}); "
            f"cluster {row['cluster']}; ledger entry #{row['ledgerEntry']}"
        )
    latest = rows[-1]
    if latest["spec"] is not None:
        print(f"\napproved spec (digest {latest['digest']}):")
        sys.stdout.write(
            orjson.dumps(latest["spec"], option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
            + "\n"
        )
    return EXIT_CLEAN


def _key(text: str) -> WorkloadKey:
    from kubeproof.store.findings import SubjectSyntaxError, parse_subject

    try:
        query = parse_subject(text)
    except SubjectSyntaxError as error:
        raise UsageError(str(error)) from None
    if query.container:
        raise UsageError(f"{text!r}: a baseline covers a whole workload; leave out [container]")
    return (query.kind, query.namespace, query.name)


def _checked_decider(arguments: argparse.Namespace) -> Decider:
    from kubeproof.store.baselines import BaselineError, Decider

    decider = Decider(arguments.by, arguments.reason, arguments.ticket)
    try:
        decider.values()  # before touching the store: a bad flag must not create one
    except BaselineError as error:
        raise UsageError(str(error)) from None
    return decider


def _open_for_writing(arguments: argparse.Namespace) -> Store:
    from kubeproof.store import StoreError
    from kubeproof.store.db import open_store

    try:
        return open_store(arguments.db)
    except StoreError as error:
        raise UsageError(str(error)) from None


def _writing(store: Store, action: Callable[[], T]) -> T:
    from sqlalchemy import exc

    from kubeproof.store.baselines import BaselineError
    from kubeproof.store.db import describe

    try:
        return action()
    except BaselineError as error:
        raise UsageError(f"{error} (nothing was written)") from None
    except exc.DBAPIError as error:
        raise UsageError(
            f"cannot write to {store.url}: {describe(error)} (nothing was written)"
        ) from None


def _say_decided(
    verb: str, decision: Decision, subjects: list[str], arguments: argparse.Namespace
) -> None:
    from kubeproof.store.baselines import display_id

    ids = [display_id(i) for i in decision.ids]
    if arguments.format == "json":
        _print_json(
            {
                "action": verb,
                "ids": ids,
                "subjects": subjects,
                "ledgerEntry": decision.ledger_seq,
                "ledgerHash": decision.ledger_hash,
            }
        )
        return
    for baseline_id, subject in zip(ids, subjects, strict=False):
        print(f"{verb} {baseline_id} {subject}")
    print(
        f"{verb} {len(ids)} baseline(s); ledger entry #{decision.ledger_seq} "
        f"{decision.ledger_hash[:16]}"
    )


def _print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=False)]
    for line in [headers, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=False)).rstrip())
