"""`kubeproof rbac who-can` agrees with the real authorizer.

A seeded, realistic RBAC set (namespaces, Roles, ClusterRoles with aggregation and
wildcards, resourceNames, subresources, RoleBindings to ClusterRoles, groups, service
accounts, non-resource URLs) is applied to a real control plane next to its own
bootstrap policy, read back through kubeproof's cluster source, and at least 2,000
(identity, request) questions are put both to who-can and to SubjectAccessReview:
an identity is in the who-can answer (itself or through one of its groups) exactly when
the API server allows it.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from controlplane import ControlPlane, wait_for
from rbac_helpers import (
    NON_RESOURCE_VERBS,
    OBJECT_NAMES,
    RESOURCES,
    URLS,
    VERBS,
    RbacSet,
    aggregation_disagreements,
    apply_objects,
    generate_rbac,
    server_allows,
    service_account_user,
)

from kubeproof.analysis.rbac import RbacIndex
from kubeproof.analysis.rbac_access import (
    AccessRequest,
    Identity,
    NonResourceRequest,
    RbacAccess,
    ResourceRequest,
)
from kubeproof.cli.main import main
from kubeproof.sources.cluster import SCANNED_KINDS, load_cluster
from kubeproof.sources.kubeconfig import load_connection

pytestmark = pytest.mark.integration

SEED = 20261128
QUESTIONS = 2400
IDENTITIES_PER_REQUEST = 8
RBAC_KINDS = {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}


@dataclass(frozen=True)
class Asker:
    """An identity as kubeproof models it, and the user name and groups that the API
    server's authenticator gives it, written out here independently of the model."""

    identity: Identity
    user: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class Question:
    asker: Asker
    request: AccessRequest

    @property
    def identity(self) -> Identity:
        return self.asker.identity

    def attributes(self) -> dict[str, str]:
        request = self.request
        if isinstance(request, NonResourceRequest):
            return {"verb": request.verb, "path": request.path}
        return {
            "verb": request.verb,
            "group": request.api_group,
            "resource": request.resource,
            "subresource": request.subresource or "",
            "name": request.name or "",
            "namespace": request.namespace or "",
        }


def _read_access(control_plane: ControlPlane) -> RbacAccess:
    """The cluster's RBAC objects, bootstrap policy included, as kubeproof reads them."""
    connection = load_connection(str(control_plane.admin_kubeconfig))
    specs = [s for s in SCANNED_KINDS if s.kind in RBAC_KINDS]
    inventory = load_cluster(connection, specs=specs)
    assert inventory.coverage.gap(RBAC_KINDS) is None
    return RbacAccess(RbacIndex(inventory))


@pytest.fixture(scope="module")
def generated(control_plane: ControlPlane) -> RbacSet:
    rbac = generate_rbac(SEED, namespaces=4, bindings=160, prefix="kpsar")
    apply_objects(control_plane, rbac.objects, rbac.namespaces)
    return rbac


@pytest.fixture(scope="module")
def access(control_plane: ControlPlane, generated: RbacSet) -> RbacAccess:
    """Read once the aggregation controller has written every aggregated role."""

    def converged() -> RbacAccess | None:
        read = _read_access(control_plane)
        ours = read.index.cluster_role("kpsar-agg0")
        settled = ours is not None and not aggregation_disagreements(read.index)
        return read if settled else None

    return wait_for(converged, "the aggregation controller to write the generated roles", 30)


def _askers(rbac: RbacSet) -> list[Asker]:
    rng = random.Random(SEED)
    askers = []
    for user in rbac.users:
        groups = rng.sample(rbac.groups, rng.randint(0, 2))
        askers.append(Asker(Identity.user(user, groups), user, (*groups, "system:authenticated")))
    for namespace, name in rbac.service_accounts:
        user, groups = service_account_user(namespace, name)
        askers.append(Asker(Identity.service_account(namespace, name), user, tuple(groups)))
    for group in rbac.groups[:2]:
        askers.append(Asker(Identity.group(group), "", (group,)))
    # A request with no implicit group at all, as SubjectAccessReview allows.
    bare = Identity("User", "kpsar-bare", None, "kpsar-bare", ())
    askers.append(Asker(bare, "kpsar-bare", ()))
    anonymous = Identity.user("system:anonymous")
    askers.append(Asker(anonymous, "system:anonymous", ("system:unauthenticated",)))
    return askers


def _random_request(rng: random.Random, rbac: RbacSet) -> AccessRequest:
    namespace = rng.choice([*rbac.namespaces, None, "kube-system"])
    group, resource, subresources, cluster_scoped = rng.choice(RESOURCES)
    subresource = rng.choice(subresources) if subresources and rng.random() < 0.3 else None
    name = rng.choice(OBJECT_NAMES) if rng.random() < 0.5 else None
    return ResourceRequest(
        rng.choice(VERBS), group, resource, subresource, name, None if cluster_scoped else namespace
    )


def _request_from_rule(rng: random.Random, rbac: RbacSet) -> AccessRequest:
    """A request aimed at one generated rule, so that many answers are `allowed`."""
    rule: dict[str, Any] = rng.choice(rbac.rules)
    verb = rng.choice(rule["verbs"])
    if "nonResourceURLs" in rule:
        pattern = rng.choice(rule["nonResourceURLs"])
        path = rng.choice(URLS) if pattern == "*" else pattern.replace("*", rng.choice(("", "x")))
        return NonResourceRequest(verb, path)
    verb = rng.choice(VERBS) if verb == "*" else verb
    written = rng.choice(rule["resources"])
    resource, _, subresource = written.partition("/")
    if resource == "*":
        resource = rng.choice(RESOURCES)[1]
    if subresource == "*":
        subresource = "status"
    group = rng.choice(rule["apiGroups"])
    group = rng.choice(RESOURCES)[0] if group == "*" else group
    names = rule.get("resourceNames") or [None]
    name = rng.choice([*names, None, "other"]) if rng.random() < 0.5 else rng.choice(names)
    namespace = rng.choice([*rbac.namespaces, None])
    return ResourceRequest(verb, group, resource, subresource or None, name, namespace)


def _non_resource_request(rng: random.Random) -> AccessRequest:
    return NonResourceRequest(rng.choice(NON_RESOURCE_VERBS), rng.choice(URLS))


def _questions(rbac: RbacSet) -> list[Question]:
    rng = random.Random(SEED + 1)
    askers = _askers(rbac)
    makers: list[Callable[[random.Random, RbacSet], AccessRequest]] = [
        _random_request,
        _request_from_rule,
        _request_from_rule,
    ]
    questions: list[Question] = []
    seen: set[Question] = set()
    while len(questions) < QUESTIONS:
        maker = rng.choice(makers)
        request = _non_resource_request(rng) if rng.random() < 0.2 else maker(rng, rbac)
        for asker in rng.sample(askers, IDENTITIES_PER_REQUEST):
            question = Question(asker, request)
            if question not in seen:
                seen.add(question)
                questions.append(question)
    return questions


def _ask_server(control_plane: ControlPlane, question: Question) -> bool:
    asker = question.asker
    return server_allows(control_plane, asker.user, list(asker.groups), **question.attributes())


def test_who_can_agrees_with_subject_access_review(
    control_plane: ControlPlane, generated: RbacSet, access: RbacAccess
) -> None:
    started = time.monotonic()
    questions = _questions(generated)
    by_request: dict[AccessRequest, list[Question]] = defaultdict(list)
    for question in questions:
        by_request[question.request].append(question)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda q: _ask_server(control_plane, q), questions))
    server = dict(zip(questions, answers, strict=True))

    disagreements = []
    for request, asked in by_request.items():
        who_can = access.who_can(request)
        for question in asked:
            model = who_can.allows(question.identity)
            if model != server[question]:
                paths = [g.path for g in who_can.grants if question.identity.matches(g.subject)]
                disagreements.append(
                    f"{question.identity} (user {question.asker.user!r}, groups "
                    f"{list(question.asker.groups)}) {request}: server "
                    f"{'allows' if server[question] else 'denies'}, who-can "
                    f"{'allows via ' + '; '.join(paths) if model else 'denies'}"
                )
    allowed = sum(answers)
    non_resource = sum(isinstance(q.request, NonResourceRequest) for q in questions)
    print(
        f"{len(questions)} questions ({non_resource} non-resource, {allowed} allowed) over "
        f"{len(access.bindings)} bindings in {time.monotonic() - started:.1f} s"
    )
    assert not disagreements, f"{len(disagreements)} disagreements:\n" + "\n".join(
        disagreements[:50]
    )
    assert len(questions) >= 2000
    assert non_resource >= 200
    # Both answers are well represented, so agreement is not agreement on `no`.
    assert allowed >= len(questions) // 10
    assert len(questions) - allowed >= len(questions) // 10


def test_subject_permissions_agree_with_who_can(generated: RbacSet, access: RbacAccess) -> None:
    """`allows` (the per-subject path) gives the same answers as who-can."""
    questions = _questions(generated)[:600]
    for question in questions:
        by_subject = access.allows(question.identity, question.request) is not None
        assert by_subject == access.who_can(question.request).allows(question.identity), question


def test_cli_reads_the_cluster_with_bootstrap_policy(
    control_plane: ControlPlane, access: RbacAccess, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = ["--cluster", "--kubeconfig", str(control_plane.admin_kubeconfig), "-o", "json"]
    code = main(["rbac", "subject", "ServiceAccount", "sa0", "-n", "kpsar-ns0", *cluster])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    document = json.loads(captured.out)
    paths = [g["path"] for scope in document["scopes"] for g in scope["grants"]]
    # Kubernetes' own binding of every authenticated identity, reached through the group.
    assert (
        "ClusterRoleBinding system:basic-user subjects[0] -> ClusterRole system:basic-user rules[0]"
        in paths
    )
    assert document["input"]["complete"] is True

    code = main(
        ["rbac", "who-can", "create", "selfsubjectaccessreviews.authorization.k8s.io", *cluster]
    )
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    listed = {(s["subject"]["kind"], s["subject"]["name"]) for s in document["subjects"]}
    assert ("Group", "system:authenticated") in listed
    expected = access.who_can(
        ResourceRequest("create", "authorization.k8s.io", "selfsubjectaccessreviews")
    )
    assert len(listed) == len(expected.by_subject())
