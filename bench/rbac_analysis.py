#!/usr/bin/env python3
"""Effective-permission analysis over a large, realistic RBAC set.

    python bench/rbac_analysis.py                       # 5,000 bindings, 50 namespaces
    python bench/rbac_analysis.py --bindings 20000 --namespaces 200

Generates a seeded RBAC set (the generator of the SubjectAccessReview agreement test:
Roles and ClusterRoles with aggregation, wildcards, resourceNames, subresources and
non-resource URLs; bindings to users, groups and service accounts), then times, in
process: reading the objects into an inventory, building the index (every binding
resolved, aggregation included), answering who-can for a set of requests, and listing
every permission of a set of subjects. As a peer in the same run it times the same
who-can questions answered the naive way, walking every binding for each request.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests" / "integration")]

from rbac_helpers import (  # noqa: E402 - the generator lives with the tests that use it
    NON_RESOURCE_VERBS,
    OBJECT_NAMES,
    RESOURCES,
    URLS,
    VERBS,
    RbacSet,
    generate_rbac,
)

from kubeproof.analysis.rbac import RbacIndex  # noqa: E402
from kubeproof.analysis.rbac_access import (  # noqa: E402
    AccessRequest,
    Identity,
    NonResourceRequest,
    RbacAccess,
    ResourceRequest,
    WhoCanAnswer,
)
from kubeproof.inventory import Inventory, K8sObject  # noqa: E402

TARGET_S = 5.0


def requests(rng: random.Random, generated: RbacSet, count: int) -> list[AccessRequest]:
    found: list[AccessRequest] = []
    for _ in range(count):
        if rng.random() < 0.15:
            found.append(NonResourceRequest(rng.choice(NON_RESOURCE_VERBS), rng.choice(URLS)))
            continue
        group, resource, subresources, cluster_scoped = rng.choice(RESOURCES)
        namespace = None if cluster_scoped else rng.choice([*generated.namespaces, None])
        found.append(
            ResourceRequest(
                rng.choice(VERBS),
                group,
                resource,
                rng.choice((None, None, *subresources)),
                rng.choice((None, None, *OBJECT_NAMES)),
                namespace,
            )
        )
    return found


def subjects(rng: random.Random, generated: RbacSet, count: int) -> list[Identity]:
    pool = [Identity.user(u, rng.sample(generated.groups, 2)) for u in generated.users]
    pool += [Identity.service_account(ns, name) for ns, name in generated.service_accounts]
    pool += [Identity.group(g) for g in generated.groups]
    return rng.sample(pool, min(count, len(pool)))


def naive_who_can(index: RbacIndex, request: AccessRequest) -> int:
    """Subjects allowed, found by walking every binding and its rules for the request."""
    allowed = 0
    for binding in index.bindings():
        resolved = index.resolve(binding)
        if isinstance(request, NonResourceRequest):
            rule = resolved.allows_non_resource(request.verb, request.path)
        else:
            rule = resolved.allows(
                request.verb,
                request.api_group,
                request.resource,
                request.subresource,
                request.name,
                request.namespace,
            )
        if rule is not None:
            allowed += len(resolved.subjects)
    return allowed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bindings", type=int, default=5000)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--questions", type=int, default=500, help="who-can requests")
    parser.add_argument("--subjects", type=int, default=200, help="subjects to list")
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args()

    generated = generate_rbac(
        arguments.seed, namespaces=arguments.namespaces, bindings=arguments.bindings
    )
    rng = random.Random(arguments.seed)
    asked = requests(rng, generated, arguments.questions)
    identities = subjects(rng, generated, arguments.subjects)

    started = time.perf_counter()
    inventory = Inventory(K8sObject.from_raw(o) for o in generated.objects)
    read_s = time.perf_counter() - started

    started = time.perf_counter()
    access = RbacAccess(RbacIndex(inventory))
    index_s = time.perf_counter() - started

    started = time.perf_counter()
    answers: list[WhoCanAnswer] = [access.who_can(request) for request in asked]
    who_can_s = time.perf_counter() - started

    started = time.perf_counter()
    permissions = [access.permissions(identity) for identity in identities]
    subject_s = time.perf_counter() - started

    started = time.perf_counter()
    naive = [naive_who_can(access.index, request) for request in asked]
    naive_s = time.perf_counter() - started
    # The peer must give the same answers, or the comparison means nothing.
    assert naive == [len(answer.grants) for answer in answers], "who-can differs from naive"

    roles = len(inventory.of_kind("Role", "ClusterRole"))
    grants = sum(len(a.grants) for a in answers)
    rules = sum(len(p.grants) for p in permissions)
    total = read_s + index_s + who_can_s + subject_s
    print(f"command: python bench/rbac_analysis.py {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"input: {len(access.bindings)} bindings, {roles} roles, "
        f"{len(generated.namespaces)} namespaces (seed {arguments.seed})"
    )
    print(f"read objects into inventory: {read_s * 1000:8.1f} ms")
    print(f"build index:                 {index_s * 1000:8.1f} ms")
    print(
        f"who-can x{len(asked)}:               {who_can_s * 1000:8.1f} ms "
        f"({who_can_s / len(asked) * 1e6:.0f} us each, {grants} grants found)"
    )
    print(
        f"subject x{len(identities)}:               {subject_s * 1000:8.1f} ms "
        f"({subject_s / len(identities) * 1e6:.0f} us each, {rules} rules listed)"
    )
    print(f"total:                       {total * 1000:8.1f} ms (target < {TARGET_S:.0f} s)")
    print(
        f"peer, naive who-can walking every binding: {naive_s * 1000:.1f} ms "
        f"({naive_s / who_can_s:.1f}x the indexed who-can)"
    )
    return 0 if total < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
