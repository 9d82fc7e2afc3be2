"""`kubeproof rbac who-can VERB RESOURCE` and `kubeproof rbac subject KIND NAME`:
effective RBAC permissions of manifests or a live cluster, each grant with its path
(binding -> role -> rule). Exit codes: 0 answered, 2 usage or input errors."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from kubeproof.analysis.rbac import SERVICE_ACCOUNT_USERNAME_PREFIX, RbacSubject
from kubeproof.analysis.rbac_access import (
    Grant,
    Identity,
    NonResourceRequest,
    RbacAccess,
    ResourceRequest,
    SubjectAnswer,
    UnknownGrant,
    WhoCanAnswer,
    parse_request,
)
from kubeproof.cli.errors import EXIT_CLEAN, EXIT_USAGE, UsageError
from kubeproof.cli.inputs import Source, add_input_arguments, load_source

RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
SUBJECT_KINDS = {
    "user": "User",
    "group": "Group",
    "serviceaccount": "ServiceAccount",
    "sa": "ServiceAccount",
}


class _IntermixedParser(argparse.ArgumentParser):
    """Options may come between positionals (`who-can get pods -n shop PATH`), as kubectl
    users write them; plain argparse stops filling positionals at the first option."""

    _parsing = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._parsing:  # the intermixed parse calls back here for each of its passes
            return super().parse_known_args(args, namespace)
        self._parsing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._parsing = False


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "rbac",
        help="effective RBAC permissions: who can do what, with the grant path",
        description="Effective RBAC permissions of manifests or a live cluster (--cluster). "
        "Exit codes: 0 answered, 2 usage or input errors.",
    )
    actions = parser.add_subparsers(
        dest="rbac_command", metavar="ACTION", required=True, parser_class=_IntermixedParser
    )

    who_can = actions.add_parser(
        "who-can",
        help="every subject allowed a request, and through which binding, role and rule",
        description="Every subject (User, Group, ServiceAccount) that RBAC allows the request, "
        "with its grant path. RESOURCE is written as kubectl writes it (pods, "
        "deployments.apps, pods/log); a RESOURCE starting with / is a non-resource URL. "
        "Without -n the request is cluster-scoped (or across every namespace).",
    )
    who_can.add_argument("verb", metavar="VERB", help="get, list, create, use, bind ...")
    who_can.add_argument("resource", metavar="RESOURCE", help="pods, deployments.apps, /metrics")
    who_can.add_argument("-n", "--namespace", metavar="NAMESPACE", help="namespace of the request")
    who_can.add_argument("--subresource", metavar="S", help="subresource (log, exec, scale ...)")
    who_can.add_argument("--name", metavar="NAME", help="name of the object (resourceNames)")
    who_can.add_argument("--api-group", metavar="G", help="API group (default: the core group)")
    _output_argument(who_can)
    add_input_arguments(who_can)
    who_can.set_defaults(run=run_who_can)

    subject = actions.add_parser(
        "subject",
        help="everything one User, Group or ServiceAccount may do, by scope",
        description="Every rule that RBAC grants a subject, grouped by scope (cluster-wide, "
        "then each namespace), with its grant path. A ServiceAccount needs -n (its "
        "namespace); for a User or Group, -n shows cluster-wide grants and that namespace's. "
        "Users and service accounts include the groups the API server adds "
        "(system:authenticated, system:serviceaccounts ...).",
    )
    subject.add_argument("kind", metavar="KIND", help="User, Group or ServiceAccount")
    subject.add_argument("name", metavar="NAME", help="the subject's name")
    subject.add_argument("-n", "--namespace", metavar="NAMESPACE")
    subject.add_argument(
        "--group",
        dest="groups",
        action="append",
        default=[],
        metavar="GROUP",
        help="for a User: a group it belongs to (repeatable)",
    )
    _output_argument(subject)
    add_input_arguments(subject)
    subject.set_defaults(run=run_subject)


def _output_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o", "--format", default="table", choices=("table", "json"), help="output (table)"
    )


# -- commands -------------------------------------------------------------------------


def run_who_can(arguments: argparse.Namespace) -> int:
    try:
        request = parse_request(
            arguments.verb,
            arguments.resource,
            namespace=arguments.namespace,
            subresource=arguments.subresource,
            name=arguments.name,
            api_group=arguments.api_group,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    source = load_source(arguments)
    answer = RbacAccess.of(source.inventory).who_can(request)
    gaps = _coverage_gaps(source)
    if arguments.format == "json":
        _write_json(who_can_document(answer, source, gaps), sys.stdout)
    else:
        write_who_can_table(answer, gaps, sys.stdout)
    return _finish(source, gaps)


def identity_from(kind: str, name: str, namespace: str | None, groups: Sequence[str]) -> Identity:
    """The identity named on the command line. Raises UsageError naming the mistake."""
    subject_kind = SUBJECT_KINDS.get(kind.lower())
    if subject_kind is None:
        raise UsageError(f"KIND {kind!r} is not User, Group or ServiceAccount")
    if not name:
        raise UsageError("NAME is empty")
    if groups and subject_kind != "User":
        raise UsageError("--group only applies to a User")
    if subject_kind == "User" and name.startswith(SERVICE_ACCOUNT_USERNAME_PREFIX):
        # The user name a service account's token carries: the account itself.
        account_namespace, _, account = name.removeprefix(
            SERVICE_ACCOUNT_USERNAME_PREFIX
        ).partition(":")
        if account_namespace and account and ":" not in account and not groups:
            return Identity.service_account(account_namespace, account)
    if subject_kind == "ServiceAccount":
        if not namespace:
            raise UsageError("a ServiceAccount needs -n NAMESPACE")
        return Identity.service_account(namespace, name)
    if subject_kind == "Group":
        return Identity.group(name)
    return Identity.user(name, groups)


def run_subject(arguments: argparse.Namespace) -> int:
    identity = identity_from(arguments.kind, arguments.name, arguments.namespace, arguments.groups)
    source = load_source(arguments)
    answer = RbacAccess.of(source.inventory).permissions(identity)
    if identity.kind != "ServiceAccount" and arguments.namespace:
        shown = (None, arguments.namespace)
        answer.grants = [g for g in answer.grants if g.namespace in shown]
        answer.unknown = [u for u in answer.unknown if u.binding.namespace in shown]
    gaps = _coverage_gaps(source)
    if arguments.format == "json":
        _write_json(subject_document(answer, source, gaps), sys.stdout)
    else:
        write_subject_table(answer, gaps, sys.stdout)
    return _finish(source, gaps)


def _coverage_gaps(source: Source) -> list[str]:
    """The RBAC kinds that could not be read: an answer cannot cover what was not seen."""
    gap = source.inventory.coverage.gap(RBAC_KINDS)
    return gap.split("; ") if gap else []


def _finish(source: Source, gaps: list[str]) -> int:
    for problem in source.errors:
        print(f"kubeproof: input error: {problem}", file=sys.stderr)
    if gaps:
        print(
            f"kubeproof: warning: not read, so the answer may be incomplete: {'; '.join(gaps)}",
            file=sys.stderr,
        )
    return EXIT_USAGE if source.errors else EXIT_CLEAN


# -- JSON -----------------------------------------------------------------------------


def _write_json(document: dict[str, Any], out: TextIO) -> None:
    json.dump(document, out, indent=2)
    out.write("\n")


def request_document(request: ResourceRequest | NonResourceRequest) -> dict[str, Any]:
    if isinstance(request, NonResourceRequest):
        return {"verb": request.verb, "nonResourceURL": request.path}
    return {
        "verb": request.verb,
        "apiGroup": request.api_group,
        "resource": request.resource,
        "subresource": request.subresource,
        "name": request.name,
        "namespace": request.namespace,
    }


def subject_document(answer: SubjectAnswer, source: Source, gaps: list[str]) -> dict[str, Any]:
    identity = answer.identity
    return {
        "subject": {"kind": identity.kind, "name": identity.name, "namespace": identity.namespace},
        "identity": {"username": identity.username, "groups": list(identity.groups)},
        "scopes": [
            {"namespace": namespace, "grants": [_grant_document(g) for g in grants]}
            for namespace, grants in answer.by_scope()
        ],
        "unknown": [_unknown_document(u) for u in answer.unknown],
        "notes": answer.notes,
        "input": _input_document(source, gaps),
    }


def who_can_document(answer: WhoCanAnswer, source: Source, gaps: list[str]) -> dict[str, Any]:
    return {
        "request": request_document(answer.request),
        "subjects": [
            {"subject": _subject_document(subject), "grants": [_grant_document(g) for g in grants]}
            for subject, grants in answer.by_subject().items()
        ],
        "unknown": [_unknown_document(u) for u in answer.unknown],
        "notes": answer.notes,
        "input": _input_document(source, gaps),
    }


def _input_document(source: Source, gaps: list[str]) -> dict[str, Any]:
    return {
        "sources": source.names,
        "complete": not gaps and not source.errors,
        "notRead": gaps,
        "errors": [str(e) for e in source.errors],
    }


def _subject_document(subject: RbacSubject) -> dict[str, Any]:
    return {"kind": subject.kind, "name": subject.name, "namespace": subject.namespace}


def _object_document(kind: str | None, name: str | None, namespace: str | None) -> dict[str, Any]:
    return {"kind": kind, "name": name, "namespace": namespace}


def _grant_document(grant: Grant) -> dict[str, Any]:
    binding, rule = grant.binding, grant.rule
    origin = rule.origin
    document: dict[str, Any] = {
        "subject": _subject_document(grant.subject) | {"field": grant.subject.path},
        "scope": {"namespace": grant.namespace},
        "binding": _object_document(binding.binding.kind, binding.binding.name, binding.namespace),
        "role": _object_document(
            binding.role_kind,
            binding.role_name,
            binding.namespace if binding.role_kind == "Role" else None,
        )
        | {"source": binding.role_source},
        "rule": {
            "verbs": list(rule.verbs),
            "apiGroups": list(rule.api_groups),
            "resources": list(rule.resources),
            "resourceNames": list(rule.resource_names),
            "nonResourceURLs": list(rule.non_resource_urls),
        },
        "path": grant.path,
    }
    if origin is not None:
        document["rule"]["origin"] = {
            "kind": origin.kind,
            "name": origin.name,
            "namespace": origin.namespace,
            "index": origin.index,
            "builtIn": origin.builtin,
            "aggregatedVia": [
                {"clusterRole": name, "selector": index} for name, index in origin.via
            ],
        }
    return document


def _unknown_document(unknown: UnknownGrant) -> dict[str, Any]:
    binding = unknown.binding
    return {
        "subject": _subject_document(unknown.subject) | {"field": unknown.subject.path},
        "binding": _object_document(binding.binding.kind, binding.binding.name, binding.namespace),
        "role": _object_document(
            binding.role_kind,
            binding.role_name,
            binding.namespace if binding.role_kind == "Role" else None,
        ),
        "reason": unknown.reason,
    }


# -- tables ---------------------------------------------------------------------------


def _table(rows: list[tuple[str, ...]], out: TextIO, indent: str = "") -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        out.write(indent + "  ".join([*cells, row[-1]]).rstrip() + "\n")


def _scope(namespace: str | None) -> str:
    return f"namespace {namespace}" if namespace else "cluster-wide"


def write_who_can_table(answer: WhoCanAnswer, gaps: list[str], out: TextIO) -> None:
    out.write(f"Who can {answer.request}:\n")
    if answer.grants:
        rows: list[tuple[str, ...]] = [("SUBJECT", "SCOPE", "GRANTED BY")]
        for subject, grants in answer.by_subject().items():
            for grant in grants:
                rows.append((str(subject), _scope(grant.namespace), grant.path))
        _table(rows, out)
    else:
        out.write("  no subject is allowed by RBAC\n")
    _write_unknown_and_notes(answer.unknown, answer.notes, gaps, out)


def write_subject_table(answer: SubjectAnswer, gaps: list[str], out: TextIO) -> None:
    identity = answer.identity
    who = f"user {identity.username}; " if identity.username else ""
    out.write(f"{identity} ({who}groups {', '.join(identity.groups)}) may:\n")
    if not answer.grants:
        out.write("  nothing granted by RBAC\n")
    for namespace, grants in answer.by_scope():
        out.write(f"\n{_scope(namespace)}:\n")
        rows: list[tuple[str, ...]] = [("VERBS", "RESOURCES", "NAMES", "GRANTED BY")]
        for grant in grants:
            rule = grant.rule
            rows.append(
                (
                    ",".join(rule.verbs),
                    ",".join(_targets(grant)),
                    ",".join(rule.resource_names) or "*",
                    grant.path,
                )
            )
        _table(rows, out, indent="  ")
    _write_unknown_and_notes(answer.unknown, answer.notes, gaps, out)


def _targets(grant: Grant) -> list[str]:
    rule = grant.rule
    targets = [
        f"{resource}.{group}" if group else resource
        for group in rule.api_groups
        for resource in rule.resources
    ]
    return targets + list(rule.non_resource_urls)


def _write_unknown_and_notes(
    unknown: list[UnknownGrant], notes: list[str], gaps: list[str], out: TextIO
) -> None:
    if unknown:
        out.write("\nUnknown (the role could not be read, so these may also be allowed):\n")
        for item in unknown:
            out.write(f"  {item.subject} via {item.binding.label}: {item.reason}\n")
    if gaps:
        out.write(f"\nIncomplete: not read: {'; '.join(gaps)}\n")
    for note in notes:
        out.write(f"\nNote: {note}\n")
