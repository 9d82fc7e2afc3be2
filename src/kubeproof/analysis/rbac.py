"""Kubernetes RBAC, exactly as the API server applies it: the primitives for effective
permission analysis (who-can, escalation paths, agreement with SubjectAccessReview).

The matching functions mirror the authorizer (`RuleAllows` and the helpers beside it in
k8s.io/kubernetes, pkg/apis/rbac/v1/evaluation_helpers.go) one to one; aggregation
mirrors the clusterrole-aggregation controller; role references and subjects mirror the
rule resolver (pkg/registry/rbac/validation/rule.go). Where a manifest is malformed the
API server would reject it; here the bad part grants nothing and is recorded as a
problem, so a caller can decline to pass what it could not read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from kubeproof.inventory import Inventory, K8sObject
from kubeproof.inventory.objects import as_dict, as_list, as_str
from kubeproof.inventory.selectors import selector_matches

VERB_ALL = "*"
API_GROUP_ALL = "*"
RESOURCE_ALL = "*"
NON_RESOURCE_ALL = "*"
SERVICE_ACCOUNT_USERNAME_PREFIX = "system:serviceaccount:"
SUBJECT_KINDS = ("User", "Group", "ServiceAccount")
_SELECTOR_OPERATORS = {"In": True, "NotIn": True, "Exists": False, "DoesNotExist": False}


# -- rules -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleOrigin:
    """Where a rule was written: `rules[index]` of a role, reached through `via`.

    `via` lists the aggregation steps from the role being judged down to the role that
    holds the rule, as (aggregating ClusterRole, index of its clusterRoleSelectors entry).
    """

    kind: str  # Role | ClusterRole
    name: str
    namespace: str | None
    index: int
    via: tuple[tuple[str, int], ...] = ()
    builtin: bool = False  # from Kubernetes' bootstrap policy, not read from the input

    @property
    def role(self) -> str:
        text = (
            f"{self.kind} {self.namespace}/{self.name}"
            if self.namespace
            else (f"{self.kind} {self.name}")
        )
        return f"built-in {text}" if self.builtin else text

    @property
    def selector_path(self) -> str | None:
        """The field of the judged role that pulled this rule in, for aggregated rules."""
        if not self.via:
            return None
        return f"aggregationRule.clusterRoleSelectors[{self.via[0][1]}]"

    def __str__(self) -> str:
        text = f"{self.role} rules[{self.index}]"
        steps = [
            f"into ClusterRole {name} by clusterRoleSelectors[{k}]"
            for name, k in reversed(self.via)
        ]
        return f"{text}, aggregated {' then '.join(steps)}" if steps else text


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One PolicyRule. Equality is on content only, as the aggregation controller compares.

    Fields of the wrong type, and list items that are not strings, grant nothing (the
    API server would have rejected them) and are listed in `problems`.
    """

    verbs: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    origin: RuleOrigin | None = field(default=None, compare=False)
    problems: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_raw(cls, raw: Any, origin: RuleOrigin | None = None) -> PolicyRule:
        where = f"rules[{origin.index}]" if origin else "rule"
        if not isinstance(raw, dict):
            return cls(origin=origin, problems=(f"{where} is not a mapping",))
        problems: list[str] = []
        return cls(
            verbs=_strings(raw, "verbs", where, problems),
            api_groups=_strings(raw, "apiGroups", where, problems),
            resources=_strings(raw, "resources", where, problems),
            resource_names=_strings(raw, "resourceNames", where, problems),
            non_resource_urls=_strings(raw, "nonResourceURLs", where, problems),
            origin=origin,
            problems=tuple(problems),
        )

    def reached_through(self, steps: tuple[tuple[str, int], ...]) -> PolicyRule:
        """This rule as seen from an aggregated ClusterRole: `steps` are the aggregation
        steps (aggregator, selector index) from that role down to this rule's holder."""
        if self.origin is None or not steps:
            return self
        return replace(self, origin=replace(self.origin, via=(*steps, *self.origin.via)))

    def describe(self) -> str:
        """The rule's content, for messages (names and verbs only; rules hold no secrets)."""
        parts = [f"verbs: {_show(self.verbs)}"]
        if self.api_groups or self.resources or not self.non_resource_urls:
            parts += [f"apiGroups: {_show(self.api_groups)}", f"resources: {_show(self.resources)}"]
        if self.resource_names:
            parts.append(f"resourceNames: {_show(self.resource_names)}")
        if self.non_resource_urls:
            parts.append(f"nonResourceURLs: {_show(self.non_resource_urls)}")
        return "; ".join(parts)


def _strings(raw: dict[str, Any], key: str, where: str, problems: list[str]) -> tuple[str, ...]:
    value = raw.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.append(f"{where}.{key} is not a list")
        return ()
    if {*map(type, value)} <= {str}:  # the common case, checked without a Python-level loop
        return tuple(value)
    if not all(isinstance(item, str) for item in value):
        problems.append(f"{where}.{key} has items that are not strings")
    return tuple(item for item in value if isinstance(item, str))


def _show(values: tuple[str, ...], limit: int = 6) -> str:
    if not values:
        return "none"
    shown = ", ".join(v if v else '""' for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


# -- matching: one function per authorizer helper -------------------------------------


def verb_matches(rule: PolicyRule, verb: str) -> bool:
    return any(v in (VERB_ALL, verb) for v in rule.verbs)


def api_group_matches(rule: PolicyRule, api_group: str) -> bool:
    return any(g in (API_GROUP_ALL, api_group) for g in rule.api_groups)


def resource_matches(rule: PolicyRule, combined_resource: str, subresource: str) -> bool:
    """`*` matches every resource and subresource; `resource/sub` matches exactly;
    `*/sub` matches that subresource of every resource (never a bare resource)."""
    for resource in rule.resources:
        if resource in (RESOURCE_ALL, combined_resource):
            return True
        if subresource and resource == f"*/{subresource}":
            return True
    return False


def resource_name_matches(rule: PolicyRule, name: str) -> bool:
    """No resourceNames allows every name, including requests that name no object."""
    return not rule.resource_names or name in rule.resource_names


def non_resource_url_matches(rule: PolicyRule, path: str) -> bool:
    """`*` matches every path; a trailing `*` makes the rest a prefix (`/api/*`)."""
    for url in rule.non_resource_urls:
        if url in (NON_RESOURCE_ALL, path):
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def rule_allows(
    rule: PolicyRule,
    verb: str,
    api_group: str,
    resource: str,
    subresource: str | None = None,
    name: str | None = None,
) -> bool:
    """Whether one rule allows a resource request. `name=None` is a request that names no
    object (list, create, deletecollection), which only rules without resourceNames allow."""
    combined = f"{resource}/{subresource}" if subresource else resource
    return (
        verb_matches(rule, verb)
        and api_group_matches(rule, api_group)
        and resource_matches(rule, combined, subresource or "")
        and resource_name_matches(rule, name or "")
    )


def rule_allows_non_resource(rule: PolicyRule, verb: str, path: str) -> bool:
    return verb_matches(rule, verb) and non_resource_url_matches(rule, path)


def grants(
    rules: Iterable[PolicyRule],
    verb: str,
    api_group: str,
    resource: str,
    subresource: str | None = None,
    name: str | None = None,
) -> PolicyRule | None:
    """The first rule that allows the resource request, or None (RBAC only adds)."""
    return next(
        (r for r in rules if rule_allows(r, verb, api_group, resource, subresource, name)), None
    )


def rule_allows_some_name(
    rule: PolicyRule, verb: str, api_group: str, resource: str, subresource: str | None = None
) -> bool:
    """Whether one rule allows the request for at least one object name: `rule_allows`
    without resourceNames (they narrow which objects, never whether any)."""
    combined = f"{resource}/{subresource}" if subresource else resource
    return (
        verb_matches(rule, verb)
        and api_group_matches(rule, api_group)
        and resource_matches(rule, combined, subresource or "")
    )


def grants_for_some_name(
    rules: Iterable[PolicyRule],
    verb: str,
    api_group: str,
    resource: str,
    subresource: str | None = None,
) -> PolicyRule | None:
    """The first rule that allows the request for at least one object name."""
    return next(
        (r for r in rules if rule_allows_some_name(r, verb, api_group, resource, subresource)),
        None,
    )


def grants_non_resource(rules: Iterable[PolicyRule], verb: str, path: str) -> PolicyRule | None:
    """The first rule that allows a non-resource request (`/healthz`, `/metrics` ...)."""
    return next((r for r in rules if rule_allows_non_resource(r, verb, path)), None)


def grants_everything(rules: Iterable[PolicyRule]) -> PolicyRule | None:
    """A rule that allows every verb on every resource of every API group, with no names:
    what makes a role equivalent to cluster-admin on the resources it is bound over."""
    return next(
        (
            r
            for r in rules
            if VERB_ALL in r.verbs
            and API_GROUP_ALL in r.api_groups
            and RESOURCE_ALL in r.resources
            and not r.resource_names
        ),
        None,
    )


# -- roles and aggregation ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules a role holds, and what in it could not be read."""

    rules: tuple[PolicyRule, ...] = ()
    problems: tuple[str, ...] = ()


def listed_rules(role: K8sObject, builtin: bool = False) -> RuleSet:
    """The rules written in a Role or ClusterRole itself, each with its origin."""
    value = role.raw.get("rules")
    if value is not None and not isinstance(value, list):
        return RuleSet(problems=(f"{role.kind} {role.name}: rules is not a list",))
    rules = tuple(
        PolicyRule.from_raw(raw, RuleOrigin(role.kind, role.name, role.namespace, i, (), builtin))
        for i, raw in enumerate(as_list(value))
    )
    problems = tuple(f"{role.kind} {role.name}: {p}" for r in rules for p in r.problems)
    return RuleSet(rules, problems)


def is_aggregated(role: K8sObject) -> bool:
    """A ClusterRole whose rules the aggregation controller manages (any aggregationRule,
    even one with no selectors: the controller then sets the rules to none)."""
    return role.kind == "ClusterRole" and role.raw.get("aggregationRule") is not None


def selector_problem(selector: Any) -> str | None:
    """Why a label selector is one the controller could not use, or None when it can.
    The controller stops on such a selector and leaves the role's rules as they were."""
    if not isinstance(selector, dict):
        return "is not a label selector"
    if not isinstance(selector.get("matchLabels", {}) or {}, dict):
        return "matchLabels is not a mapping"
    expressions = selector.get("matchExpressions")
    if expressions is not None and not isinstance(expressions, list):
        return "matchExpressions is not a list"
    for raw in as_list(expressions):
        expression = as_dict(raw)
        operator = expression.get("operator")
        if not isinstance(expression.get("key"), str):
            return "matchExpressions has an entry without a key"
        if not isinstance(operator, str) or operator not in _SELECTOR_OPERATORS:
            return f"matchExpressions has unknown operator {operator!r}"
        values = as_list(expression.get("values"))
        if _SELECTOR_OPERATORS[operator] != bool(values):
            return f"matchExpressions operator {operator} has the wrong number of values"
    return None


@dataclass(frozen=True, slots=True)
class RbacSubject:
    """One subject of a binding. A ServiceAccount's namespace is the effective one: the
    binding's own namespace when the subject names none (RoleBindings only)."""

    kind: str
    name: str
    namespace: str | None
    index: int  # position in the binding's subjects, for field paths

    @property
    def path(self) -> str:
        return f"subjects[{self.index}]"

    @property
    def username(self) -> str | None:
        """The user name a request carries to match this subject (Users and ServiceAccounts)."""
        if self.kind == "User":
            return self.name
        if self.kind == "ServiceAccount" and self.namespace:
            return f"{SERVICE_ACCOUNT_USERNAME_PREFIX}{self.namespace}:{self.name}"
        return None

    def applies_to(self, username: str, groups: Iterable[str]) -> bool:
        """Whether a request by this user (with these groups) matches the subject."""
        if self.kind == "Group":
            return self.name in groups
        return self.username is not None and self.username == username

    def __str__(self) -> str:
        if self.kind == "ServiceAccount":
            return f"ServiceAccount {self.namespace or '<no namespace>'}/{self.name}"
        return f"{self.kind} {self.name}"


@dataclass(frozen=True, slots=True)
class ResolvedBinding:
    """A RoleBinding or ClusterRoleBinding with its roleRef resolved to rules.

    `namespace` is where the grant applies: a RoleBinding's namespace (even when it
    references a ClusterRole), or None for a ClusterRoleBinding (cluster-wide).
    `role_source` says where the rules came from: `input`, `built-in` (Kubernetes'
    bootstrap policy, for a ClusterRole not in the input) or `missing`.
    """

    binding: K8sObject
    role_kind: str | None
    role_name: str | None
    role: K8sObject | None
    rules: tuple[PolicyRule, ...]
    role_source: str
    subjects: tuple[RbacSubject, ...]
    namespace: str | None
    problems: tuple[str, ...] = ()  # in the roleRef or the referenced role's rules
    subject_problems: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return binding_label(self.binding)

    @property
    def role_label(self) -> str:
        if self.role_kind == "Role" and self.namespace:
            return f"Role {self.namespace}/{self.role_name}"
        return f"{self.role_kind or 'role'} {self.role_name or '<unnamed>'}"

    @property
    def scope(self) -> str:
        return f"in namespace {self.namespace}" if self.namespace else "cluster-wide"

    @property
    def rules_known(self) -> bool:
        return self.role_source != "missing"

    def allows(
        self,
        verb: str,
        api_group: str,
        resource: str,
        subresource: str | None = None,
        name: str | None = None,
        namespace: str | None = None,
    ) -> PolicyRule | None:
        """The rule through which this binding allows a resource request in `namespace`
        (None for a cluster-scoped resource). A RoleBinding allows nothing outside its
        namespace, cluster-scoped resources included, whatever its role says."""
        if self.namespace is not None and namespace != self.namespace:
            return None
        return grants(self.rules, verb, api_group, resource, subresource, name)

    def allows_non_resource(self, verb: str, path: str) -> PolicyRule | None:
        """Non-resource URLs have no namespace: only ClusterRoleBindings grant them."""
        if self.namespace is not None:
            return None
        return grants_non_resource(self.rules, verb, path)

    def subject_for(self, username: str, groups: Iterable[str]) -> RbacSubject | None:
        """The first subject a request by this user matches, as the authorizer picks it."""
        group_list = list(groups)
        return next((s for s in self.subjects if s.applies_to(username, group_list)), None)


# Kubernetes' bootstrap ClusterRoles whose rules a judgment may need when the input does
# not include them (manifests rarely do). Copied from the bootstrap policy.
BUILTIN_CLUSTER_ROLE_RULES: dict[str, list[dict[str, Any]]] = {
    "cluster-admin": [
        {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
        {"verbs": ["*"], "nonResourceURLs": ["*"]},
    ],
    "system:discovery": [
        {
            "verbs": ["get"],
            "nonResourceURLs": [
                "/livez",
                "/readyz",
                "/healthz",
                "/version",
                "/version/",
                "/openapi",
                "/openapi/*",
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
            ],
        },
    ],
    "system:public-info-viewer": [
        {
            "verbs": ["get"],
            "nonResourceURLs": ["/livez", "/readyz", "/healthz", "/version", "/version/"],
        },
    ],
    "system:basic-user": [
        {
            "verbs": ["create"],
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
        },
        {
            "verbs": ["create"],
            "apiGroups": ["authentication.k8s.io"],
            "resources": ["selfsubjectreviews"],
        },
    ],
    "system:service-account-issuer-discovery": [
        {
            "verbs": ["get"],
            "nonResourceURLs": [
                "/.well-known/openid-configuration",
                "/.well-known/openid-configuration/",
                "/openid/v1/jwks",
                "/openid/v1/jwks/",
            ],
        },
    ],
}


class RbacIndex:
    """The Roles, ClusterRoles and bindings of an inventory, indexed once."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        # Later objects of the same name win, as a later `kubectl apply` would.
        self._cluster_roles = {r.name: r for r in inventory.of_kind("ClusterRole")}
        self._roles = {(r.namespace, r.name): r for r in inventory.of_kind("Role")}
        self._selected: dict[tuple[int, int], list[str]] = {}
        self._rules: dict[tuple[int, bool], RuleSet] = {}
        self._bindings_of: dict[tuple[str, str | None, str], list[K8sObject]] | None = None
        self._resolved: dict[int, ResolvedBinding] = {}
        self._aggregated_into: dict[str, list[str]] | None = None

    def cluster_role(self, name: str) -> K8sObject | None:
        return self._cluster_roles.get(name)

    def cluster_roles(self) -> list[K8sObject]:
        return [self._cluster_roles[name] for name in sorted(self._cluster_roles)]

    def role(self, namespace: str | None, name: str) -> K8sObject | None:
        return self._roles.get((namespace, name))

    def rules_of(self, role: K8sObject) -> RuleSet:
        """Every rule that may be in force for a role. For an aggregated ClusterRole that is
        its listed rules plus the rules of the ClusterRoles it selects (transitively): a
        cluster read shows the controller's last result and manifests leave the rules out,
        and until the controller next runs either may be what the API server holds."""
        return self._resolve(role, include_listed=True)

    def aggregated_rules(self, role: K8sObject) -> RuleSet:
        """What the aggregation controller sets an aggregated ClusterRole's rules to, in
        its order: for each selector, the matching ClusterRoles by name (never the role
        itself), each one's rules (an aggregated one's own aggregate), first copy kept."""
        return self._resolve(role, include_listed=False)

    def _resolve(self, role: K8sObject, include_listed: bool) -> RuleSet:
        key = (id(role), include_listed)
        if key not in self._rules:
            if is_aggregated(role):
                self._rules[key] = self._aggregate(role, include_listed)
            else:
                self._rules[key] = listed_rules(role)
        return self._rules[key]

    def _aggregate(self, top: K8sObject, include_listed: bool) -> RuleSet:
        rules: list[PolicyRule] = []
        seen: set[PolicyRule] = set()
        problems: list[str] = []

        def add(ruleset: RuleSet, via: tuple[tuple[str, int], ...]) -> None:
            problems.extend(ruleset.problems)
            for rule in ruleset.rules:
                if rule not in seen:
                    seen.add(rule)
                    rules.append(rule.reached_through(via))

        if include_listed:
            add(listed_rules(top), ())
        # Depth first, each ClusterRole expanded once: linear in the selection graph even
        # when hostile selectors select every role, and cycles end.
        expanded = {top.name}

        def expand(role: K8sObject, via: tuple[tuple[str, int], ...]) -> None:
            for k, contributor_name in self._selections(role, problems):
                contributor = self._cluster_roles[contributor_name]
                if contributor_name == role.name or contributor_name in expanded:
                    continue
                expanded.add(contributor_name)
                step = (*via, (role.name, k))
                if not is_aggregated(contributor):
                    add(listed_rules(contributor), step)
                    continue
                if include_listed:
                    add(listed_rules(contributor), step)
                expand(contributor, step)

        expand(top, ())
        return RuleSet(tuple(rules), tuple(dict.fromkeys(problems)))

    def _selections(self, role: K8sObject, problems: list[str]) -> Iterator[tuple[int, str]]:
        """(selector index, ClusterRole name) for each ClusterRole a selector matches,
        in the controller's order: selectors in turn, names sorted within each."""
        aggregation = role.raw.get("aggregationRule")
        where = f"ClusterRole {role.name}: aggregationRule"
        if not isinstance(aggregation, dict):
            problems.append(f"{where} is not a mapping")
            return
        selectors = aggregation.get("clusterRoleSelectors")
        if selectors is not None and not isinstance(selectors, list):
            problems.append(f"{where}.clusterRoleSelectors is not a list")
            return
        for k, selector in enumerate(as_list(selectors)):
            problem = selector_problem(selector)
            if problem is not None:
                problems.append(f"{where}.clusterRoleSelectors[{k}] {problem}")
                continue
            key = (id(role), k)
            if key not in self._selected:
                self._selected[key] = sorted(
                    name
                    for name, candidate in self._cluster_roles.items()
                    if selector_matches(selector, candidate.labels)
                )
            for name in self._selected[key]:
                yield k, name

    def aggregated_into(self, name: str) -> list[str]:
        """The aggregated ClusterRoles that directly select ClusterRole `name`."""
        if self._aggregated_into is None:
            into: dict[str, list[str]] = {}
            for aggregator in self._cluster_roles.values():
                if is_aggregated(aggregator):
                    for _, selected in self._selections(aggregator, []):
                        if selected != aggregator.name:
                            into.setdefault(selected, []).append(aggregator.name)
            self._aggregated_into = {k: sorted(set(v)) for k, v in into.items()}
        return self._aggregated_into.get(name, [])

    # -- bindings --------------------------------------------------------------------

    def bindings(self) -> Iterator[K8sObject]:
        yield from self.inventory.of_kind("ClusterRoleBinding", "RoleBinding")

    def bindings_of(self, role: K8sObject) -> list[K8sObject]:
        """The bindings whose roleRef names this role (RoleBindings to a Role only in its
        namespace; to a ClusterRole from any namespace)."""
        if self._bindings_of is None:
            index: dict[tuple[str, str | None, str], list[K8sObject]] = {}
            for binding in self.bindings():
                ref = as_dict(binding.raw.get("roleRef"))
                kind, name = as_str(ref.get("kind")), as_str(ref.get("name"))
                if kind is None or name is None:
                    continue
                namespace = binding.namespace if kind == "Role" else None
                if kind == "Role" and binding.kind != "RoleBinding":
                    continue  # a ClusterRoleBinding cannot reference a Role
                index.setdefault((kind, namespace, name), []).append(binding)
            self._bindings_of = index
        namespace = role.namespace if role.kind == "Role" else None
        return self._bindings_of.get((role.kind, namespace, role.name), [])

    def resolve(self, binding: K8sObject) -> ResolvedBinding:
        """A binding's roleRef resolved to rules, and its subjects, as the authorizer reads
        them. A ClusterRoleBinding may only reference a ClusterRole."""
        key = id(binding)
        if key not in self._resolved:
            self._resolved[key] = self._resolve_binding(binding)
        return self._resolved[key]

    def _resolve_binding(self, binding: K8sObject) -> ResolvedBinding:
        problems: list[str] = []
        namespace = binding.namespace if binding.kind == "RoleBinding" else None
        ref = binding.raw.get("roleRef")
        if not isinstance(ref, dict):
            problems.append("roleRef is missing or not a mapping")
        ref = as_dict(ref)
        role_kind, role_name = as_str(ref.get("kind")), as_str(ref.get("name"))
        role: K8sObject | None = None
        rules: tuple[PolicyRule, ...] = ()
        source = "missing"
        if role_kind not in ("Role", "ClusterRole") or not role_name:
            problems.append(f"roleRef kind {role_kind!r} name {role_name!r} names no role")
        elif role_kind == "Role" and namespace is None:
            problems.append("a ClusterRoleBinding cannot reference a Role: it grants nothing")
        else:
            role = (
                self.role(namespace, role_name)
                if role_kind == "Role"
                else self.cluster_role(role_name)
            )
        if role is not None:
            ruleset = self.rules_of(role)
            rules, source = ruleset.rules, "input"
            problems.extend(ruleset.problems)
        elif role_kind == "ClusterRole" and role_name in BUILTIN_CLUSTER_ROLE_RULES:
            rules, source = builtin_cluster_role_rules(role_name), "built-in"
        subjects, subject_problems = _subjects(binding, namespace)
        return ResolvedBinding(
            binding=binding,
            role_kind=role_kind,
            role_name=role_name,
            role=role,
            rules=rules,
            role_source=source,
            subjects=subjects,
            namespace=namespace,
            problems=tuple(problems),
            subject_problems=tuple(subject_problems),
        )


def binding_label(binding: K8sObject) -> str:
    """`RoleBinding ns/name` or `ClusterRoleBinding name`, for messages."""
    where = f"{binding.namespace}/" if binding.kind == "RoleBinding" else ""
    return f"{binding.kind} {where}{binding.name}"


def role_label(role: K8sObject) -> str:
    """`Role ns/name` or `ClusterRole name`, for messages."""
    where = f"{role.namespace}/" if role.kind == "Role" else ""
    return f"{role.kind} {where}{role.name}"


def builtin_cluster_role_rules(name: str) -> tuple[PolicyRule, ...]:
    return tuple(
        PolicyRule.from_raw(raw, RuleOrigin("ClusterRole", name, None, i, (), True))
        for i, raw in enumerate(BUILTIN_CLUSTER_ROLE_RULES.get(name, []))
    )


def _subjects(
    binding: K8sObject, namespace: str | None
) -> tuple[tuple[RbacSubject, ...], list[str]]:
    raw_subjects = binding.raw.get("subjects")
    problems: list[str] = []
    if raw_subjects is not None and not isinstance(raw_subjects, list):
        return (), ["subjects is not a list"]
    subjects: list[RbacSubject] = []
    for i, raw in enumerate(as_list(raw_subjects)):
        raw = as_dict(raw)
        kind, name = as_str(raw.get("kind")), as_str(raw.get("name"))
        if kind not in SUBJECT_KINDS or not name:
            problems.append(f"subjects[{i}] is not a User, Group or ServiceAccount with a name")
            continue
        subject_namespace = None
        if kind == "ServiceAccount":
            subject_namespace = as_str(raw.get("namespace")) or namespace
            if not subject_namespace:
                problems.append(
                    f"subjects[{i}] is a ServiceAccount with no namespace in a "
                    "ClusterRoleBinding: it matches no one"
                )
        subjects.append(RbacSubject(kind, name, subject_namespace, i))
    return tuple(subjects), problems
