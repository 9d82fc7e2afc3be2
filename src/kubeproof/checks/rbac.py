"""RBAC checks on manifests and cluster reads.

Role-level checks judge what a Role or ClusterRole allows, rule by rule (aggregated
ClusterRoles included); binding-level checks judge to whom a binding gives its role.
Every message names the path: binding -> role -> rule. Kubernetes' own `system:` roles
are not judged at role level; Kubernetes' own bindings are judged only for the
subjects they give to someone other than a Kubernetes component.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubeproof.analysis.rbac import (
    BUILTIN_CLUSTER_ROLE_RULES,
    RESOURCE_ALL,
    PolicyRule,
    RbacIndex,
    RbacSubject,
    ResolvedBinding,
    RuleSet,
    binding_label,
    grants_everything,
    role_label,
    rule_allows,
    rule_allows_some_name,
)
from kubeproof.analysis.rbac_access import Identity, RbacAccess
from kubeproof.checks.registry import NotApplicable, NotEvaluated, Violation, check
from kubeproof.checks.workload import service_account_name, token_mount
from kubeproof.inventory import K8sObject, Workload

if TYPE_CHECKING:
    from kubeproof.engine import Context

RBAC = "rbac.authorization.k8s.io"
AUTHENTICATION = "authentication.k8s.io"
AUTHORIZATION = "authorization.k8s.io"
CERTIFICATES = "certificates.k8s.io"
ADMISSION = "admissionregistration.k8s.io"
BOOTSTRAP_LABEL = "kubernetes.io/bootstrapping"
# The user-facing roles Kubernetes ships (labelled as bootstrap policy when read from a cluster).
BUILTIN_USER_ROLES = frozenset({"cluster-admin", "admin", "edit", "view"})
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


# -- whose objects these are ---------------------------------------------------------


def is_builtin_role(role: K8sObject) -> bool:
    """Kubernetes' own roles: every `system:` role, and the bootstrap user-facing ones."""
    if role.name.startswith("system:"):
        return True
    return (
        role.kind == "ClusterRole"
        and role.name in BUILTIN_USER_ROLES
        and role.labels.get(BOOTSTRAP_LABEL) == "rbac-defaults"
    )


def is_kubernetes_own_binding(binding: K8sObject) -> bool:
    """`system:` bindings, and the bootstrap `cluster-admin` one (system:masters)."""
    return binding.name.startswith("system:") or (
        binding.kind == "ClusterRoleBinding" and binding.name == "cluster-admin"
    )


def is_system_identity(subject: RbacSubject) -> bool:
    """A Kubernetes component's identity. A default service account never is one."""
    if subject.kind == "ServiceAccount":
        return subject.namespace == "kube-system" and subject.name != "default"
    return subject.name.startswith("system:")


# -- binding level ----------------------------------------------------------------------

JudgeSubject = Callable[[ResolvedBinding, RbacSubject, "Context"], str | None]


def _judge_binding(
    binding: K8sObject,
    ctx: Context,
    judge: JudgeSubject,
    *,
    reads_rules: bool,
    exempt_own: bool = True,
) -> Iterator[Violation]:
    """One violation per subject the judge objects to. A Kubernetes-own binding is judged
    only for subjects that are not Kubernetes components (none left: not applicable)."""
    resolved = ctx.derived("rbac", RbacIndex).resolve(binding)
    subjects: Sequence[RbacSubject] = resolved.subjects
    if exempt_own and is_kubernetes_own_binding(binding):
        subjects = [s for s in subjects if not is_system_identity(s)]
        if not subjects:
            raise NotApplicable
    found = False
    for subject in subjects:
        message = judge(resolved, subject, ctx)
        if message is not None:
            found = True
            yield Violation(message, subject.path)
    problems = resolved.subject_problems + (resolved.problems if reads_rules else ())
    if not found and problems:
        raise NotEvaluated("; ".join(problems))


def _binding_path(resolved: ResolvedBinding, rule: PolicyRule | None = None) -> str:
    if rule is not None and rule.origin is not None:
        return f"{resolved.label} -> {rule.origin}"
    return f"{resolved.label} -> {resolved.role_label}"


def _unknown_role(resolved: ResolvedBinding, ctx: Context) -> NotEvaluated:
    if resolved.problems:
        return NotEvaluated("; ".join(resolved.problems))
    gap = ctx.inventory.coverage.gap([resolved.role_kind or "ClusterRole"])
    where = f" ({gap})" if gap else ""
    return NotEvaluated(
        f"{resolved.role_label}, referenced by {resolved.label}, is not in the input{where}, "
        "so what it grants is unknown"
    )


def _grants_everything(resolved: ResolvedBinding, ctx: Context) -> str | None:
    """The path through which a binding's role grants every permission, or None."""
    rule = grants_everything(resolved.rules)
    if rule is not None:
        return _binding_path(resolved, rule)
    if resolved.role_kind == "ClusterRole" and resolved.role_name == "cluster-admin":
        return _binding_path(resolved)
    if resolved.rules_known:
        return None
    name = resolved.role_name or ""
    if resolved.role_kind == "ClusterRole" and (
        name in BUILTIN_USER_ROLES or name.startswith("system:")
    ):
        return None  # Kubernetes' other built-in roles never grant everything
    raise _unknown_role(resolved, ctx)


def _cluster_admin_to(kinds: tuple[str, ...]) -> JudgeSubject:
    def judge(resolved: ResolvedBinding, subject: RbacSubject, ctx: Context) -> str | None:
        if subject.kind not in kinds:
            return None
        path = _grants_everything(resolved, ctx)
        if path is None:
            return None
        return f"{path} grants {subject} every permission {resolved.scope}"

    return judge


@check("rbac.cluster-admin-bound")
def cluster_admin_bound(binding: K8sObject, ctx: Context) -> Iterator[Violation]:
    yield from _judge_binding(binding, ctx, _cluster_admin_to(("User", "Group")), reads_rules=True)


@check("rbac.cluster-admin-service-account")
def cluster_admin_service_account(binding: K8sObject, ctx: Context) -> Iterator[Violation]:
    yield from _judge_binding(
        binding, ctx, _cluster_admin_to(("ServiceAccount",)), reads_rules=True
    )


def _system_masters(resolved: ResolvedBinding, subject: RbacSubject, ctx: Context) -> str | None:
    if subject.kind != "Group" or subject.name != "system:masters":
        return None
    return (
        f"{_binding_path(resolved)} binds Group system:masters: its members pass every "
        "authorization check before RBAC is read, so RBAC can neither limit nor revoke them"
    )


@check("rbac.system-masters-bound")
def system_masters_bound(binding: K8sObject, ctx: Context) -> Iterator[Violation]:
    yield from _judge_binding(binding, ctx, _system_masters, reads_rules=False)


# Identities that stand for everyone (or every workload): what they are given, anyone gets.
EVERYONE = {
    ("User", "system:anonymous"): "every anonymous request",
    ("Group", "system:unauthenticated"): "every unauthenticated request",
    ("Group", "system:authenticated"): "every authenticated user",
    ("Group", "system:serviceaccounts"): "every service account in the cluster",
}
# What Kubernetes itself gives everyone: discovery, health, version, OIDC discovery,
# self-review, and the public CA bundles. Nothing more may go to the identities above.
DISCOVERY_URLS = frozenset(
    url
    for role in (
        "system:discovery",
        "system:public-info-viewer",
        "system:service-account-issuer-discovery",
    )
    for rule in BUILTIN_CLUSTER_ROLE_RULES[role]
    for url in rule.get("nonResourceURLs", ())
)
DISCOVERY_GRANTS = frozenset(
    {
        ("create", AUTHORIZATION, "selfsubjectaccessreviews"),
        ("create", AUTHORIZATION, "selfsubjectrulesreviews"),
        ("create", AUTHENTICATION, "selfsubjectreviews"),
        ("get", CERTIFICATES, "clustertrustbundles"),
        ("list", CERTIFICATES, "clustertrustbundles"),
        ("watch", CERTIFICATES, "clustertrustbundles"),
    }
)


def goes_beyond_discovery(rule: PolicyRule, namespace: str | None) -> bool:
    """Whether a rule, granted in `namespace` (None: cluster-wide), allows anything
    outside what Kubernetes gives everyone. Non-resource URLs count only cluster-wide: a
    RoleBinding cannot grant them."""
    if namespace == "kube-public" and _is_cluster_info_read(rule):
        return False
    if any(
        (verb, group, resource) not in DISCOVERY_GRANTS
        for verb in rule.verbs
        for group in rule.api_groups
        for resource in rule.resources
    ):
        return True
    return namespace is None and any(
        verb != "get" or url not in DISCOVERY_URLS
        for verb in rule.verbs
        for url in rule.non_resource_urls
    )


def _is_cluster_info_read(rule: PolicyRule) -> bool:
    """kubeadm publishes the cluster's CA and address to joining nodes as the
    kube-public/cluster-info ConfigMap, readable by anyone by design."""
    return (
        set(rule.verbs) == {"get"}
        and rule.api_groups == ("",)
        and rule.resources == ("configmaps",)
        and rule.resource_names == ("cluster-info",)
        and not rule.non_resource_urls
    )


def _everyone(resolved: ResolvedBinding, subject: RbacSubject, ctx: Context) -> str | None:
    who = EVERYONE.get((subject.kind, subject.name))
    if who is None:
        return None
    if not resolved.rules_known:
        if resolved.problems:
            raise _unknown_role(resolved, ctx)
        return (
            f"{_binding_path(resolved)} grants {subject} ({who}) a role that is not in the "
            "input, so it cannot be shown to allow no more than discovery"
        )
    beyond = [r for r in resolved.rules if goes_beyond_discovery(r, resolved.namespace)]
    if not beyond:
        return None
    more = f" and {len(beyond) - 1} more rules" if len(beyond) > 1 else ""
    return (
        f"{_binding_path(resolved, beyond[0])} grants {subject} ({who}) more than discovery "
        f"{resolved.scope}: {beyond[0].describe()}{more}"
    )


@check("rbac.anonymous-or-all-users-bound")
def anonymous_or_all_users_bound(binding: K8sObject, ctx: Context) -> Iterator[Violation]:
    # No exemption for Kubernetes-own names: such a binding is judged by what it grants.
    yield from _judge_binding(binding, ctx, _everyone, reads_rules=True, exempt_own=False)


def _default_service_account(
    resolved: ResolvedBinding, subject: RbacSubject, ctx: Context
) -> str | None:
    if subject.kind != "ServiceAccount" or subject.name != "default" or not subject.namespace:
        return None
    return (
        f"{_binding_path(resolved)} grants {subject} {resolved.scope}: every pod in namespace "
        f"{subject.namespace} that names no service account runs with it"
    )


@check("rbac.default-service-account-bound")
def default_service_account_bound(binding: K8sObject, ctx: Context) -> Iterator[Violation]:
    yield from _judge_binding(binding, ctx, _default_service_account, reads_rules=False)


# -- role level -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Access:
    """Requests a role-level check looks for in each rule."""

    verbs: tuple[str, ...]
    api_group: str
    resource: str
    subresource: str | None = None
    # Judge a grant on any one object (exec into one pod is still exec), rather than only
    # one on every object (reading one named secret is the least privilege CIS asks for).
    for_some_name: bool = True
    # Cluster-scoped requests carry no namespace, so a Role cannot grant them.
    cluster_scoped: bool = False

    @property
    def resource_path(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def allowed_by(self, rule: PolicyRule, verb: str) -> bool:
        if self.for_some_name:
            return rule_allows_some_name(
                rule, verb, self.api_group, self.resource, self.subresource
            )
        return rule_allows(rule, verb, self.api_group, self.resource, self.subresource)


class Accesses:
    """The requests one check looks for, and every entry a rule's resources may hold to
    match one of them (`*`, the resource path, `*/subresource`): most rules name none of
    those, and so grant none of the requests, which a set lookup shows at once."""

    __slots__ = ("items", "matching_resources")

    def __init__(self, *items: Access) -> None:
        self.items = items
        self.matching_resources = frozenset(
            {RESOURCE_ALL}
            | {a.resource_path for a in items}
            | {f"{RESOURCE_ALL}/{a.subresource}" for a in items if a.subresource}
        )


# (rule, id of an access set, cluster-wide) -> (that set, what the rule grants of it)
GrantedMemo = dict[tuple[PolicyRule, int, bool], tuple[Accesses, list[str]]]


def _granted_at(
    rule: PolicyRule,
    accesses: Accesses,
    cluster_wide: bool,
    memo: GrantedMemo,
) -> list[str]:
    """`_granted` for the accesses that apply where the rule is granted (cluster-scoped
    requests only through a cluster-wide grant), remembered for the scan by the rule's
    content: roles repeat the same rules (each namespace's copy of an application's Role,
    every binding of one ClusterRole)."""
    if accesses.matching_resources.isdisjoint(rule.resources):
        return []
    key = (rule, id(accesses), cluster_wide)
    known = memo.get(key)
    if known is None or known[0] is not accesses:  # the same set, not a reused id
        applicable = [a for a in accesses.items if cluster_wide or not a.cluster_scoped]
        known = memo[key] = (accesses, _granted(rule, applicable))
    return known[1]


def _granted(rule: PolicyRule, accesses: Sequence[Access]) -> list[str]:
    """What a rule allows of `accesses`, e.g. `create on deployments, jobs (apps)`:
    targets granted the same verbs in the same API group are named together."""
    by_verbs: dict[tuple[tuple[str, ...], str], list[str]] = {}
    for access in accesses:
        verbs = tuple(verb for verb in access.verbs if access.allowed_by(rule, verb))
        if verbs:
            by_verbs.setdefault((verbs, access.api_group), []).append(access.resource_path)
    return [
        f"{', '.join(verbs)} on {', '.join(targets)}" + (f" ({group})" if group else "")
        for (verbs, group), targets in by_verbs.items()
    ]


def _rule_path(rule: PolicyRule) -> str | None:
    origin = rule.origin
    if origin is None:
        return None
    return origin.selector_path or f"rules[{origin.index}]"


def _role_context(index: RbacIndex, role: K8sObject) -> tuple[str, str]:
    """(prefix, suffix) for role-level messages: the bindings that use the role, or why
    none is shown."""
    bindings = index.bindings_of(role)
    if bindings:
        names = [binding_label(b) for b in bindings[:3]]
        if len(bindings) > 3:
            names.append(f"{len(bindings) - 3} more")
        return ", ".join(names) + " -> ", ""
    aggregators = index.aggregated_into(role.name) if role.kind == "ClusterRole" else []
    if aggregators:
        return "", f" (aggregated into ClusterRole {', '.join(aggregators)})"
    return "", " (bound by no binding in the input)"


@dataclass(frozen=True, slots=True)
class RoleView:
    """What every role-level check reads of one role: its rules, and how messages name it."""

    ruleset: RuleSet
    prefix: str
    suffix: str
    resources: frozenset[str]  # every entry of its rules' resources


def _role_view(role: K8sObject, ctx: Context) -> RoleView | None:
    """The role as role-level checks see it, None for Kubernetes' own roles; worked out
    once per scan, as a dozen checks judge each role."""
    views: dict[int, RoleView | None] = ctx.derived("rbac-role-views", lambda _: {})
    key = id(role)
    if key not in views:
        index = ctx.derived("rbac", RbacIndex)
        if is_builtin_role(role):
            views[key] = None
        else:
            ruleset = index.rules_of(role)
            resources = frozenset(r for rule in ruleset.rules for r in rule.resources)
            views[key] = RoleView(ruleset, *_role_context(index, role), resources)
    return views[key]


def _judge_role(
    role: K8sObject, ctx: Context, describe: Callable[[PolicyRule], str | None]
) -> Iterator[Violation]:
    """One violation per rule of the role (aggregated rules included) that `describe`
    objects to; `describe` returns what the rule allows that the check is about."""
    view = _role_view(role, ctx)
    if view is None:
        raise NotApplicable
    found = False
    for rule in view.ruleset.rules:
        what = describe(rule)
        if what is None:
            continue
        found = True
        where = str(rule.origin) if rule.origin else role_label(role)
        yield Violation(
            f"{view.prefix}{where}{view.suffix} {what} ({rule.describe()})", _rule_path(rule)
        )
    if not found and view.ruleset.problems:
        raise NotEvaluated("; ".join(view.ruleset.problems))


def _role_allows(
    role: K8sObject,
    ctx: Context,
    accesses: Accesses,
    consequence: Callable[[], str] | None = None,
) -> Iterator[Violation]:
    """`consequence`, computed once and only for a role that allows something, ends each
    message (what the permission leads to)."""
    view = _role_view(role, ctx)
    if (
        view is not None
        and not view.ruleset.problems
        and accesses.matching_resources.isdisjoint(view.resources)
    ):
        return  # no rule of the role names what the accesses are on: the common case
    cluster_wide = role.kind == "ClusterRole"
    memo: GrantedMemo = ctx.derived("rbac-granted", lambda _: {})

    def describe(rule: PolicyRule) -> str | None:
        granted = _granted_at(rule, accesses, cluster_wide, memo)
        return f"allows {'; '.join(granted)}" if granted else None

    said: list[str] = []
    for violation in _judge_role(role, ctx, describe):
        if consequence is not None:
            said = said or [consequence()]
            violation = Violation(violation.message + said[0], violation.path)
        yield violation


def wildcard_fields(rule: PolicyRule) -> list[str]:
    """The fields of a rule that use a wildcard (`*`, or `*/sub` over every resource)."""
    fields = []
    if "*" in rule.verbs:
        fields.append("verbs")
    if "*" in rule.api_groups:
        fields.append("apiGroups")
    if any(r == "*" or r.startswith("*/") for r in rule.resources):
        fields.append("resources")
    if "*" in rule.non_resource_urls:
        fields.append("nonResourceURLs")
    return fields


@check("rbac.wildcard-rules")
def wildcard_rules(role: K8sObject, ctx: Context) -> Iterator[Violation]:
    def describe(rule: PolicyRule) -> str | None:
        fields = wildcard_fields(rule)
        return f"uses a wildcard in {', '.join(fields)}" if fields else None

    yield from _judge_role(role, ctx, describe)


SECRETS_READ = Accesses(Access(("get", "list", "watch"), "", "secrets", for_some_name=False))


@check("rbac.secrets-read")
def secrets_read(role: K8sObject, ctx: Context) -> Iterator[Violation]:
    yield from _role_allows(role, ctx, SECRETS_READ)


# Pods, and the controllers that create pods from a template their writer chooses.
POD_CREATE = Accesses(
    Access(("create",), "", "pods", for_some_name=False),
    *(
        Access(("create",), "apps", r, for_some_name=False)
        for r in ("deployments", "replicasets", "statefulsets", "daemonsets")
    ),
    *(Access(("create",), "batch", r, for_some_name=False) for r in ("jobs", "cronjobs")),
    Access(("create",), "", "replicationcontrollers", for_some_name=False),
)


@check("rbac.pod-create")
def pod_create(role: K8sObject, ctx: Context) -> Iterator[Violation]:
    yield from _role_allows(role, ctx, POD_CREATE, lambda: _pod_create_reach(role, ctx))


def _pod_create_reach(role: K8sObject, ctx: Context) -> str:
    """Pods run as any service account of their namespace, chosen by whoever writes the
    pod: the accounts a role's pod creation reaches, and their dangerous permissions."""
    index = ctx.derived("rbac", RbacIndex)
    bindings = index.bindings_of(role)
    if not bindings:
        return ""
    if any(b.kind == "ClusterRoleBinding" for b in bindings):
        namespaces = ctx.derived(
            "rbac-every-namespace", lambda inventory: tuple(inventory.namespaces())
        )
        where = "in every namespace"
    else:
        namespaces = tuple(sorted({b.namespace for b in bindings if b.namespace}))
        where = f"in namespace {', '.join(namespaces)}"
    # Every role bound cluster-wide reaches the same accounts: say it once per scan.
    said: dict[tuple[str, tuple[str, ...]], str] = ctx.derived(
        "rbac-pod-create-reach", lambda _: {}
    )
    key = (where, namespaces)
    if key not in said:
        said[key] = _reach_text(ctx, namespaces, where)
    return said[key]


def _reach_text(ctx: Context, namespaces: Sequence[str], where: str) -> str:
    reached: list[str] = []
    accounts = 0
    for namespace in namespaces:
        count, dangerous = _namespace_reach(ctx, namespace)
        accounts += count
        reached.extend(dangerous)
    if not reached:
        return (
            f"; pods it creates {where} may run as any service account there, none of the "
            f"{accounts} in the input holding a dangerous permission"
        )
    return (
        f"; pods it creates {where} may run as any service account there, reaching "
        f"{_listed(reached, 3)}"
    )


def _namespace_reach(ctx: Context, namespace: str) -> tuple[int, list[str]]:
    """How many accounts a pod in the namespace may run as, and those holding a dangerous
    permission (each with its first one); kept for the scan, as many roles reach a namespace."""
    known: dict[str, tuple[int, list[str]]] = ctx.derived("rbac-namespace-reach", lambda _: {})
    if namespace not in known:
        names = _service_accounts_in(ctx, namespace)
        dangerous = []
        for name in names:
            grants = service_account_dangers(ctx, namespace, name).grants
            if grants:
                rest = f" and {len(grants) - 1} more" if len(grants) > 1 else ""
                dangerous.append(f"ServiceAccount {namespace}/{name}: {grants[0]}{rest}")
        known[namespace] = (len(names), dangerous)
    return known[namespace]


def _service_accounts_in(ctx: Context, namespace: str) -> list[str]:
    """The accounts a pod in the namespace may name: those in the input, those its
    workloads use, and `default`, which every namespace has."""
    names = {obj.name for obj in ctx.inventory.in_namespace("ServiceAccount", namespace)}
    names.update(service_account_name(w) for w in ctx.inventory.workloads_in(namespace))
    names.add("default")
    return sorted(names)


# `get` on exec and attach: API servers before the WebSocket upgrade check (on by default
# from Kubernetes 1.35) let it open a session.
POD_EXEC = Accesses(
    Access(("create", "get"), "", "pods", "exec"),
    Access(("create", "get"), "", "pods", "attach"),
    Access(("update", "patch"), "", "pods", "ephemeralcontainers"),
)


@check("rbac.pod-exec")
def pod_exec(role: K8sObject, ctx: Context) -> Iterator[Violation]:
    yield from _role_allows(role, ctx, POD_EXEC)


PRIVILEGE_ESCALATION = Accesses(
    Access(("escalate", "bind"), RBAC, "roles"),
    # bind is checked in the namespace of the binding being made, escalate on a
    # ClusterRole in no namespace.
    Access(("bind",), RBAC, "clusterroles"),
    Access(("escalate",), RBAC, "clusterroles", cluster_scoped=True),
    Access(("impersonate",), "", "users", cluster_scoped=True),
    Access(("impersonate",), "", "groups", cluster_scoped=True),
    Access(("impersonate",), "", "serviceaccounts"),
    # Constrained impersonation (beta, on by default from Kubernetes 1.36).
    Access(("impersonate:user-info",), AUTHENTICATION, "users", cluster_scoped=True),
    Access(("impersonate:user-info",), AUTHENTICATION, "groups", cluster_scoped=True),
    Access(("impersonate:serviceaccount",), AUTHENTICATION, "serviceaccounts"),
    Access(("impersonate:arbitrary-node",), AUTHENTICATION, "nodes", cluster_scoped=True),
)


@check("rbac.escalate-bind-impersonate")
def escalate_bind_impersonate(role: K8sObject, ctx: Context) -> Iterator[Violation]:
    yield from _role_allows(role, ctx, PRIVILEGE_ESCALATION)


PERSISTENT_VOLUME_CREATE = Accesses(
    Access(("create",), "", "persistentvolumes", for_some_name=False, cluster_scoped=True),
)


@check("rbac.persistent-volume-create")
def persistent_volume_create(role: K8sObject, ctx: Context) -> Iterator[Violation]:
    yield from _role_allows(role, ctx, PERSISTENT_VOLUME_CREATE)


NODE_PROXY = Accesses(
    Access(
        ("get", "list", "watch", "create", "update", "patch", "delete"),
        "",
        "nodes",
        "proxy",
        cluster_scoped=True,
    ),
)


@check("rbac.node-proxy")
def node_proxy(role: K8sObject, ctx: Context) -> Iterator[Violation]:
    yield from _role_allows(role, ctx, NODE_PROXY)


# Approving a CSR takes both: update on the approval subresource and approve on the signer.
CSR_APPROVAL = Accesses(
    Access(
        ("update", "patch"),
        CERTIFICATES,
        "certificatesigningrequests",
        "approval",
        cluster_scoped=True,
    ),
    Access(("approve",), CERTIFICATES, "signers", cluster_scoped=True),
)


@check("rbac.csr-approval")
def csr_approval(role: K8sObject, ctx: Context) -> Iterator[Violation]:
    yield from _role_allows(role, ctx, CSR_APPROVAL)


ADMISSION_CONFIGURATION_WRITE = Accesses(
    *(
        Access(WRITE_VERBS, ADMISSION, resource, cluster_scoped=True)
        for resource in (
            "validatingwebhookconfigurations",
            "mutatingwebhookconfigurations",
            "validatingadmissionpolicies",
            "validatingadmissionpolicybindings",
            "mutatingadmissionpolicies",
            "mutatingadmissionpolicybindings",
        )
    )
)


@check("rbac.webhook-config-write")
def webhook_config_write(role: K8sObject, ctx: Context) -> Iterator[Violation]:
    yield from _role_allows(role, ctx, ADMISSION_CONFIGURATION_WRITE)


SERVICE_ACCOUNT_TOKEN_CREATE = Accesses(Access(("create",), "", "serviceaccounts", "token"))


@check("rbac.service-account-token-create")
def service_account_token_create(role: K8sObject, ctx: Context) -> Iterator[Violation]:
    yield from _role_allows(role, ctx, SERVICE_ACCOUNT_TOKEN_CREATE)


# -- what a workload's identity may do ----------------------------------------------------

BINDING_WRITE = Accesses(
    Access(("create", "update", "patch"), RBAC, "rolebindings", for_some_name=False),
    Access(
        ("create", "update", "patch"),
        RBAC,
        "clusterrolebindings",
        for_some_name=False,
        cluster_scoped=True,
    ),
)
# What makes a stolen token dangerous, in the order messages list it.
DANGERS: tuple[tuple[str, Accesses], ...] = (
    ("read secrets", SECRETS_READ),
    ("escalate, bind or impersonate", PRIVILEGE_ESCALATION),
    ("write role bindings", BINDING_WRITE),
    ("create pods", POD_CREATE),
    ("run commands in pods", POD_EXEC),
    ("proxy to nodes", NODE_PROXY),
    ("approve certificate requests", CSR_APPROVAL),
    ("write admission webhooks or policies", ADMISSION_CONFIGURATION_WRITE),
    ("create service account tokens", SERVICE_ACCOUNT_TOKEN_CREATE),
)
# What a rule must name in its resources to grant any of the dangers: most name none.
DANGEROUS_RESOURCES: frozenset[str] = frozenset().union(*(a.matching_resources for _, a in DANGERS))


@dataclass(frozen=True, slots=True)
class DangerousGrant:
    """One dangerous permission an identity holds, where, and through which path."""

    what: str  # e.g. "every permission", "read secrets (get, list on secrets)"
    scope: str  # "cluster-wide" | "in namespace X"
    path: str  # binding -> role -> rule

    def __str__(self) -> str:
        return f"{self.what} {self.scope} ({self.path})"


@dataclass(frozen=True, slots=True)
class IdentityDangers:
    grants: tuple[DangerousGrant, ...]
    unknown: tuple[str, ...]  # bindings naming the identity whose role could not be read


def _access(ctx: Context) -> RbacAccess:
    return ctx.derived("rbac-access", lambda _: RbacAccess(ctx.derived("rbac", RbacIndex)))


def service_account_dangers(ctx: Context, namespace: str, name: str) -> IdentityDangers:
    """The dangerous permissions of a service account's token, its implicit groups
    included; computed once per account per scan."""
    cache = ctx.derived("rbac-service-account-dangers", lambda _: {})
    key = (namespace, name)
    if key not in cache:
        per_binding: dict[tuple[int, int], IdentityDangers] = ctx.derived(
            "rbac-binding-dangers", lambda _: {}
        )
        identity = Identity.service_account(namespace, name)
        memo: GrantedMemo = ctx.derived("rbac-granted", lambda _: {})
        cache[key] = _dangers(_access(ctx), identity, per_binding, memo)
    found: IdentityDangers = cache[key]
    return found


def _dangers(
    access: RbacAccess,
    identity: Identity,
    per_binding: dict[tuple[int, int], IdentityDangers],
    memo: GrantedMemo,
) -> IdentityDangers:
    grants: list[DangerousGrant] = []
    unknown: list[str] = []
    for resolved, subject in access.bindings_naming(identity):
        # Every account shares its group bindings (system:serviceaccounts and the like):
        # judge each binding once per scan, not once per account.
        key = (id(resolved), subject.index)
        if key not in per_binding:
            via = f" via {subject}" if subject.kind == "Group" else ""
            per_binding[key] = _binding_dangers(resolved, via, memo)
        found = per_binding[key]
        grants.extend(found.grants)
        unknown.extend(found.unknown)
    return IdentityDangers(tuple(grants), tuple(unknown))


def _binding_dangers(
    resolved: ResolvedBinding,
    via: str,
    memo: GrantedMemo,
) -> IdentityDangers:
    """The dangerous permissions one binding grants whoever it names."""
    if not resolved.rules_known:
        return IdentityDangers((), (f"{resolved.label} -> {resolved.role_label}{via}",))
    everything = grants_everything(resolved.rules)
    if everything is not None:
        path = _binding_path(resolved, everything) + via
        return IdentityDangers((DangerousGrant("every permission", resolved.scope, path),), ())
    grants: list[DangerousGrant] = []
    rules = [r for r in resolved.rules if not DANGEROUS_RESOURCES.isdisjoint(r.resources)]
    for label, accesses in DANGERS:
        for rule in rules:
            granted = _granted_at(rule, accesses, resolved.namespace is None, memo)
            if granted:
                what = f"{label} ({'; '.join(granted)})"
                path = _binding_path(resolved, rule) + via
                grants.append(DangerousGrant(what, resolved.scope, path))
                break  # one path per danger per binding is enough to act on
    return IdentityDangers(tuple(grants), ())


def _listed(items: Sequence[object], limit: int = 4) -> str:
    shown = "; ".join(str(item) for item in items[:limit])
    return shown + (f"; and {len(items) - limit} more" if len(items) > limit else "")


def _token_note(workload: Workload, ctx: Context) -> str:
    """Whether the pod holds the token, said in the message rather than passed silently."""
    try:
        mount = token_mount(workload, ctx)
    except NotEvaluated as unknown:
        return f"; whether its token is mounted is not known: {unknown}"
    if mount.mounted:
        return ""
    return (
        f"; its token is not mounted ({mount.why}), so a compromised container cannot use it "
        "directly, but anyone who can create pods in the namespace can still mount it"
    )


@check("rbac.workload-service-account-privileged")
def workload_service_account_privileged(workload: Workload, ctx: Context) -> Iterator[Violation]:
    name = service_account_name(workload)
    dangers = service_account_dangers(ctx, workload.namespace, name)
    if not dangers.grants:
        if dangers.unknown:
            raise NotEvaluated(
                f"ServiceAccount {workload.namespace}/{name} is bound to roles that are not "
                f"in the input, so what its token allows is unknown: {_listed(dangers.unknown)}"
            )
        return
    yield Violation(
        f"pods run as ServiceAccount {workload.namespace}/{name}, whose token gives a "
        f"compromised container: {_listed(dangers.grants)}{_token_note(workload, ctx)}",
        "serviceAccountName",
    )
