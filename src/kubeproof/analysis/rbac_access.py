"""Effective RBAC permissions: who can make a request, and what an identity may do.

Built on the authorizer-exact primitives of `kubeproof.analysis.rbac`: a request is
allowed when some binding names the requester (its user name or one of its groups) and
the binding's role holds a rule allowing the request where the binding applies. Every
answer carries its grant path: binding -> role -> rule, aggregation steps included.

Identities carry the groups the API server adds at authentication: every service
account is in `system:serviceaccounts`, `system:serviceaccounts:<namespace>` and
`system:authenticated`; every other authenticated user in `system:authenticated`.
Members of `system:masters` pass authorization before RBAC is read; answers say so in
their notes rather than listing them as RBAC grants.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from kubeproof.analysis.rbac import (
    RESOURCE_ALL,
    SERVICE_ACCOUNT_USERNAME_PREFIX,
    VERB_ALL,
    PolicyRule,
    RbacIndex,
    RbacSubject,
    ResolvedBinding,
    grants,
    grants_non_resource,
)
from kubeproof.inventory import Inventory

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
SERVICE_ACCOUNTS = "system:serviceaccounts"
MASTERS = "system:masters"
MASTERS_NOTE = (
    f"members of Group {MASTERS} are allowed every request before RBAC is read; "
    "RBAC cannot show or limit them"
)
# `deployments.v1.apps`: kubectl's fully qualified form names a version before the group.
_VERSION = re.compile(r"v\d+((alpha|beta)\d+)?")
_BLANK = re.compile(r"\s")
NON_RESOURCE = "/"  # index key of non-resource rules: no resource name starts with "/"


# -- identities and requests ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    """Who makes a request, as the authorizer sees it: a user name (None for a bare group)
    and the groups, the implicit ones included."""

    kind: str  # User | Group | ServiceAccount
    name: str
    namespace: str | None = None
    username: str | None = None
    groups: tuple[str, ...] = ()

    @classmethod
    def user(cls, name: str, groups: Iterable[str] = ()) -> Identity:
        implicit = UNAUTHENTICATED if name == ANONYMOUS else AUTHENTICATED
        return cls("User", name, None, name, tuple(dict.fromkeys((*groups, implicit))))

    @classmethod
    def service_account(cls, namespace: str, name: str) -> Identity:
        username = f"{SERVICE_ACCOUNT_USERNAME_PREFIX}{namespace}:{name}"
        groups = (SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{namespace}", AUTHENTICATED)
        return cls("ServiceAccount", name, namespace, username, groups)

    @classmethod
    def group(cls, name: str) -> Identity:
        """What a binding to this group grants: every member has at least this."""
        return cls("Group", name, None, None, (name,))

    def matches(self, subject: RbacSubject) -> bool:
        if subject.kind == "Group":
            return subject.name in self.groups
        return self.username is not None and subject.username == self.username

    def __str__(self) -> str:
        if self.kind == "ServiceAccount":
            return f"ServiceAccount {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


@dataclass(frozen=True, slots=True)
class ResourceRequest:
    """A request on a resource. `namespace=None` is a cluster-scoped request, or one
    across every namespace; `name=None` names no object (list, create)."""

    verb: str
    api_group: str
    resource: str
    subresource: str | None = None
    name: str | None = None
    namespace: str | None = None

    def __str__(self) -> str:
        target = self.resource + (f".{self.api_group}" if self.api_group else "")
        if self.subresource:
            target += f"/{self.subresource}"
        if self.name:
            target += f" {self.name}"
        where = f"in namespace {self.namespace}" if self.namespace else "cluster-wide"
        return f"{self.verb} {target} {where}"


@dataclass(frozen=True, slots=True)
class NonResourceRequest:
    """A request on a non-resource URL (`/metrics`, `/healthz`); it has no namespace."""

    verb: str
    path: str

    def __str__(self) -> str:
        return f"{self.verb} {self.path}"


AccessRequest = ResourceRequest | NonResourceRequest


def parse_resource(text: str) -> tuple[str, str | None, str | None]:
    """`RESOURCE[.VERSION.GROUP|.GROUP][/SUBRESOURCE]`, as kubectl writes it, to
    (resource, API group or None when not written, subresource or None).
    Raises ValueError naming the text."""
    if not text or _BLANK.search(text):
        raise ValueError(f"resource {text!r} is empty or contains white space")
    head, slash, subresource = text.partition("/")
    if slash and (not subresource or "/" in subresource):
        raise ValueError(f"resource {text!r}: write RESOURCE/SUBRESOURCE with one '/'")
    resource, dot, group = head.partition(".")
    if not resource:
        raise ValueError(f"resource {text!r} has no resource name before its API group")
    if dot:
        parts = group.split(".")
        if not all(parts):
            raise ValueError(f"resource {text!r} has an empty API group segment")
        if len(parts) > 1 and _VERSION.fullmatch(parts[0]):
            group = ".".join(parts[1:])
    return resource, (group if dot else None), (subresource if slash else None)


def parse_request(
    verb: str,
    resource: str,
    *,
    namespace: str | None = None,
    subresource: str | None = None,
    name: str | None = None,
    api_group: str | None = None,
) -> AccessRequest:
    """A who-can question from command-line words. A RESOURCE starting with `/` is a
    non-resource URL. Raises ValueError naming the word that is wrong."""
    if not verb or _BLANK.search(verb) or "/" in verb:
        raise ValueError(f"verb {verb!r} is empty or not a single word")
    for flag, value in (("--namespace", namespace), ("--subresource", subresource)):
        if value is not None and (not value or _BLANK.search(value) or "/" in value):
            raise ValueError(f"{flag} {value!r} is empty or not a single word")
    if name is not None and (not name or "/" in name):
        raise ValueError(f"--name {name!r} is empty or contains '/'")
    if resource.startswith("/"):
        given = [
            flag
            for flag, value in (
                ("--namespace", namespace),
                ("--subresource", subresource),
                ("--name", name),
                ("--api-group", api_group),
            )
            if value is not None
        ]
        if given:
            raise ValueError(
                f"non-resource URL {resource}: {', '.join(given)} do not apply to a URL"
            )
        if _BLANK.search(resource):
            raise ValueError(f"non-resource URL {resource!r} contains white space")
        return NonResourceRequest(verb, resource)
    plain, written_group, written_subresource = parse_resource(resource)
    if api_group is not None and written_group is not None and api_group != written_group:
        raise ValueError(
            f"resource {resource} names API group {written_group!r} but --api-group is "
            f"{api_group!r}"
        )
    if None not in (subresource, written_subresource) and subresource != written_subresource:
        raise ValueError(
            f"resource {resource} names subresource {written_subresource!r} but "
            f"--subresource is {subresource!r}"
        )
    group = written_group if written_group is not None else (api_group or "")
    return ResourceRequest(
        verb,
        group,
        plain,
        subresource or written_subresource,
        name,
        namespace,
    )


# -- answers ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Grant:
    """One binding giving one of its subjects one rule, where the binding applies."""

    binding: ResolvedBinding
    subject: RbacSubject  # as the binding names it (possibly a group the requester is in)
    rule: PolicyRule

    @property
    def namespace(self) -> str | None:
        return self.binding.namespace

    @property
    def path(self) -> str:
        """binding -> role -> rule, with aggregation steps."""
        if self.rule.origin is not None:
            return f"{self.binding.label} {self.subject.path} -> {self.rule.origin}"
        return f"{self.binding.label} {self.subject.path} -> {self.binding.role_label}"


@dataclass(frozen=True, slots=True)
class UnknownGrant:
    """A binding that names the subject but whose role could not be read: what it grants
    is unknown, so an answer that leaves it out would claim more than was seen."""

    binding: ResolvedBinding
    subject: RbacSubject

    @property
    def reason(self) -> str:
        if self.binding.problems:
            return "; ".join(self.binding.problems)
        return f"{self.binding.role_label} is not in the input"


@dataclass(slots=True)
class WhoCanAnswer:
    request: AccessRequest
    grants: list[Grant] = field(default_factory=list)
    unknown: list[UnknownGrant] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def by_subject(self) -> dict[RbacSubject, list[Grant]]:
        """Grants per subject as bindings name them (the binding index aside)."""
        grouped: dict[RbacSubject, list[Grant]] = {}
        for grant in self.grants:
            grouped.setdefault(subject_key(grant.subject), []).append(grant)
        return grouped

    def allows(self, identity: Identity) -> bool:
        """Whether the identity is in the answer: named itself or through a group."""
        return any(identity.matches(g.subject) for g in self.grants)


@dataclass(slots=True)
class SubjectAnswer:
    identity: Identity
    grants: list[Grant] = field(default_factory=list)
    unknown: list[UnknownGrant] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def by_scope(self) -> list[tuple[str | None, list[Grant]]]:
        """Grants cluster-wide first, then per namespace in name order."""
        scopes: dict[str | None, list[Grant]] = defaultdict(list)
        for grant in self.grants:
            scopes[grant.namespace].append(grant)
        return sorted(scopes.items(), key=lambda item: (item[0] is not None, item[0] or ""))


def subject_key(subject: RbacSubject) -> RbacSubject:
    """The subject without its position in one binding, to group grants by who gets them."""
    return RbacSubject(subject.kind, subject.name, subject.namespace, 0)


def effective_rule(rule: PolicyRule, binding: ResolvedBinding) -> PolicyRule | None:
    """What a rule can grant through a binding: through a RoleBinding non-resource URLs
    grant nothing (they have no namespace). None when nothing is left."""
    if binding.namespace is not None and rule.non_resource_urls:
        if not rule.resources:
            return None
        rule = PolicyRule(
            rule.verbs, rule.api_groups, rule.resources, rule.resource_names, (), rule.origin
        )
    if not rule.verbs or not (rule.resources or rule.non_resource_urls):
        return None
    return rule


# -- the index ---------------------------------------------------------------------------


class RbacAccess:
    """Every binding resolved once and indexed by the rules it grants and by who it names,
    so that who-can and per-subject questions over thousands of bindings stay fast."""

    def __init__(self, index: RbacIndex) -> None:
        self.index = index
        self.bindings = [index.resolve(b) for b in index.bindings()]
        self._order = {id(b): i for i, b in enumerate(self.bindings)}
        # Bindings sharing a role share its rules tuple: a question is judged once per
        # role, then only the bindings that apply where it is asked are walked.
        self._rules: dict[int, tuple[PolicyRule, ...]] = {}
        self._by_rules: dict[int, dict[str | None, list[ResolvedBinding]]] = {}
        # (verb, resource) -> rules that may allow it; `*` for either wildcard, and the
        # resource `/` for non-resource URLs. Exact matching happens afterwards.
        self._by_target: dict[tuple[str, str], list[int]] = defaultdict(list)
        self._unknown: list[ResolvedBinding] = []
        # Filled on the first who-can question (a scan asks only per-subject ones), under a
        # lock, as threads may share one analysis.
        self._rules_indexed = False
        self._rules_lock = threading.Lock()
        self._by_username: dict[str, list[tuple[ResolvedBinding, RbacSubject]]] = defaultdict(list)
        self._by_group: dict[str, list[tuple[ResolvedBinding, RbacSubject]]] = defaultdict(list)
        for binding in self.bindings:
            for subject in binding.subjects:
                if subject.kind == "Group":
                    self._by_group[subject.name].append((binding, subject))
                elif subject.username is not None:
                    self._by_username[subject.username].append((binding, subject))

    def _index_rules(self) -> None:
        with self._rules_lock:
            if self._rules_indexed:
                return
            for binding in self.bindings:
                if not binding.subjects:
                    continue
                if not binding.rules_known:
                    self._unknown.append(binding)
                key = id(binding.rules)
                if key not in self._rules:
                    self._rules[key] = binding.rules
                    for target in _targets(binding.rules):
                        self._by_target[target].append(key)
                by_namespace = self._by_rules.setdefault(key, defaultdict(list))
                by_namespace[binding.namespace].append(binding)
            self._rules_indexed = True

    @classmethod
    def of(cls, inventory: Inventory) -> RbacAccess:
        return cls(RbacIndex(inventory))

    # -- who can ------------------------------------------------------------------------

    def who_can(self, request: AccessRequest) -> WhoCanAnswer:
        self._index_rules()
        answer = WhoCanAnswer(request, notes=[MASTERS_NOTE])
        namespace = request.namespace if isinstance(request, ResourceRequest) else None
        for key in self._candidate_rules(request):
            bindings = self._by_rules[key]
            applying = [*bindings.get(None, ()), *_in(bindings, namespace)]
            if not applying:  # e.g. a Role bound only in other namespaces
                continue
            rule = self._first_rule(self._rules[key], request)
            if rule is None:
                continue
            for binding in applying:
                answer.grants.extend(Grant(binding, s, rule) for s in binding.subjects)
        answer.grants.sort(key=_grant_order)
        for binding in self._unknown:
            if binding.namespace is None or binding.namespace == namespace:
                answer.unknown.extend(UnknownGrant(binding, s) for s in binding.subjects)
        return answer

    def _candidate_rules(self, request: AccessRequest) -> list[int]:
        resource = request.resource if isinstance(request, ResourceRequest) else NON_RESOURCE
        keys: dict[int, None] = {}
        for verb in (request.verb, VERB_ALL):
            for target in (resource, RESOURCE_ALL):
                keys.update(dict.fromkeys(self._by_target.get((verb, target), ())))
        return list(keys)

    @staticmethod
    def _first_rule(rules: tuple[PolicyRule, ...], request: AccessRequest) -> PolicyRule | None:
        if isinstance(request, NonResourceRequest):
            return grants_non_resource(rules, request.verb, request.path)
        return grants(
            rules,
            request.verb,
            request.api_group,
            request.resource,
            request.subresource,
            request.name,
        )

    # -- per subject ----------------------------------------------------------------------

    def bindings_naming(self, identity: Identity) -> list[tuple[ResolvedBinding, RbacSubject]]:
        """Every (binding, subject) pair that applies to the identity, in binding order,
        the first matching subject of each binding (as the authorizer picks it)."""
        found: dict[int, tuple[ResolvedBinding, RbacSubject]] = {}
        pairs = [*self._by_username.get(identity.username or "", ())] if identity.username else []
        for group in identity.groups:
            pairs.extend(self._by_group.get(group, ()))
        for binding, subject in pairs:
            current = found.get(id(binding))
            if current is None or subject.index < current[1].index:
                found[id(binding)] = (binding, subject)
        return sorted(found.values(), key=lambda pair: self._order[id(pair[0])])

    def permissions(self, identity: Identity) -> SubjectAnswer:
        """Everything the identity may do, rule by rule, with each grant's path."""
        answer = SubjectAnswer(identity)
        if MASTERS in identity.groups:
            answer.notes.append(MASTERS_NOTE)
        for binding, subject in self.bindings_naming(identity):
            if not binding.rules_known:
                answer.unknown.append(UnknownGrant(binding, subject))
            for rule in binding.rules:
                effective = effective_rule(rule, binding)
                if effective is not None:
                    answer.grants.append(Grant(binding, subject, effective))
        return answer

    def allows(self, identity: Identity, request: AccessRequest) -> Grant | None:
        """The first grant through which the identity may make the request, or None."""
        namespace = request.namespace if isinstance(request, ResourceRequest) else None
        for binding, subject in self.bindings_naming(identity):
            if isinstance(request, NonResourceRequest) and binding.namespace is not None:
                continue
            if binding.namespace is not None and binding.namespace != namespace:
                continue
            rule = self._first_rule(binding.rules, request)
            if rule is not None:
                return Grant(binding, subject, rule)
        return None


def _targets(rules: tuple[PolicyRule, ...]) -> set[tuple[str, str]]:
    """The (verb, resource) index keys of a role's rules: `pods/log` files under pods,
    `*/scale` under `*`; non-resource URLs under NON_RESOURCE."""
    targets: set[tuple[str, str]] = set()
    for rule in rules:
        resources = {r.partition("/")[0] for r in rule.resources}
        if rule.non_resource_urls:
            resources.add(NON_RESOURCE)
        targets.update((verb, resource) for verb in rule.verbs for resource in resources)
    return targets


def _in(
    bindings: dict[str | None, list[ResolvedBinding]], namespace: str | None
) -> Iterator[ResolvedBinding]:
    if namespace is not None:
        yield from bindings.get(namespace, ())


def _grant_order(grant: Grant) -> tuple[str, str, str, str, str]:
    subject = grant.subject
    return (
        subject.kind,
        subject.namespace or "",
        subject.name,
        grant.binding.binding.kind,
        grant.binding.label,
    )
