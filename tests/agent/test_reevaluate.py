"""Which verdicts a change re-judges, the verdict diff, and the redacted field diff."""

from __future__ import annotations

import json

from agent_objects import cache_of, deployment, owned, plain

from kubeproof import frameworks
from kubeproof.agent.reevaluate import (
    NOT_SHOWN,
    Plan,
    apply_verdicts,
    diff_verdicts,
    evaluate_plan,
    judged_diff,
    plan_for,
    verdicts_of,
)
from kubeproof.agent.state import Change, ObjectCache
from kubeproof.engine import Context
from kubeproof.inventory import Inventory
from kubeproof.model import Subject

CHECKS = frameworks.load("soc2").checks
WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "Pod", "Namespace")


def _context(inventory: Inventory) -> Context:
    return Context(inventory, cluster_name="test")


def _present(cache: ObjectCache) -> object:
    return lambda s: s.kind == "Cluster" or cache.get(s.kind, s.namespace, s.name) is not None


def test_a_pod_change_re_judges_its_top_owner_only() -> None:
    web = deployment()
    replica_set = owned("ReplicaSet", "web-1", web, "apps/v1")
    pod = owned("Pod", "web-1-x", replica_set)
    cache = cache_of(web, replica_set, pod)
    plan = plan_for(Change("Pod", None, pod), cache, CHECKS)
    assert plan is not None and plan.workloads is not None
    assert ("Deployment", "shop", "web") in plan.workloads
    scopes = {c.spec.scope for c in CHECKS if c.spec.id in plan.checks}
    assert scopes == {"container", "workload"}


def test_rbac_network_policy_and_other_kinds() -> None:
    cache = ObjectCache()
    role = plain("ClusterRole", "admin-ish", None, api_version="rbac.authorization.k8s.io/v1")
    rbac = plan_for(Change("ClusterRole", None, role), cache, CHECKS)
    assert rbac is not None and rbac.workloads is None and rbac.namespaces is None
    assert {c.spec.group for c in CHECKS if c.spec.id in rbac.checks} == {"rbac"}

    policy = plain("NetworkPolicy", "deny", "shop", api_version="networking.k8s.io/v1")
    network = plan_for(Change("NetworkPolicy", None, policy), cache, CHECKS)
    assert network is not None and network.namespaces == frozenset({"shop"})
    assert network.covers(next(iter(network.checks)), Subject("v1", "Pod", "shop", "x"))
    assert not network.covers(next(iter(network.checks)), Subject("v1", "Pod", "other", "x"))

    service = plain("Service", "web", "shop", {"spec": {"type": "NodePort"}})
    other = plan_for(Change("Service", None, service), cache, CHECKS)
    assert other is not None
    judged = [c.spec for c in CHECKS if c.spec.id in other.checks]
    assert judged and all("Service" in s.kinds or "Service" in s.needs for s in judged)


def test_verdict_diff_failing_changed_resolved_deleted() -> None:
    web = deployment()
    cache = cache_of(web, kinds=WORKLOAD_KINDS)
    plan = Plan(frozenset(c.spec.id for c in CHECKS if c.spec.scope in ("container", "workload")),
                workloads=frozenset({("Deployment", "shop", "web")}))  # fmt: skip
    verdicts = verdicts_of(evaluate_plan(plan, cache, CHECKS, _context))
    assert not [
        r for r in verdicts.values() if r.check.id == "pss.privileged" and r.status == "fail"
    ]

    def step() -> list[tuple[str, str]]:
        fresh = evaluate_plan(plan, cache, CHECKS, _context)
        moved = diff_verdicts(plan, verdicts, fresh, _present(cache))
        apply_verdicts(plan, verdicts, fresh)
        return [(t.transition, t.result.check.id) for t in moved]

    assert step() == []  # nothing changed, nothing moves
    cache.put(deployment(privileged=True, version="2"))
    assert ("failing", "pss.privileged") in step()
    assert not [m for m in step() if m[1] == "pss.privileged"]  # judged again: no news
    cache.put(deployment(privileged=False, version="3"))
    assert ("resolved", "pss.privileged") in step()
    cache.put(deployment(privileged=True, version="4"))
    assert ("failing", "pss.privileged") in step()
    cache.remove(web)
    assert ("deleted", "pss.privileged") in step()


def test_changed_when_a_failure_says_something_else() -> None:
    plan = Plan(frozenset({"pss.privileged"}))
    cache = cache_of(deployment(privileged=True), kinds=WORKLOAD_KINDS)
    verdicts = verdicts_of(evaluate_plan(plan, cache, CHECKS, _context))
    [fresh] = [r for r in evaluate_plan(plan, cache, CHECKS, _context) if r.subject.name == "web"]
    fresh.message = "another failure"
    [moved] = diff_verdicts(plan, verdicts, [fresh], _present(cache))
    assert (moved.transition, moved.before, moved.after) == ("changed", "fail", "fail")


def test_field_diff_is_redacted() -> None:
    before = deployment(version="1")
    after = deployment(privileged=True, version="2")
    container = after.raw["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "GREETING", "value": "hello-literal"}]
    after.raw["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": '{"data": {"x": "c2VjcmV0"}}',
        "password": "hunter2-Zq9!xK",
    }
    diff = judged_diff(before, after)
    text = json.dumps(diff)
    paths = {entry["path"]: entry for entry in diff}
    privileged = "spec.template.spec.containers[0].securityContext.privileged"
    assert paths[privileged] == {"path": privileged, "before": False, "after": True}
    assert paths["spec.template.spec.containers[0].env[0].value"]["after"] == NOT_SHOWN
    assert "hello-literal" not in text and "hunter2" not in text and "c2VjcmV0" not in text
    assert "resourceVersion" not in text and "status" not in text

    config = plain("ConfigMap", "settings", "shop", {"data": {"db": "postgres://u:pw@h/db"}})
    added = {entry["path"]: entry for entry in judged_diff(None, config)}
    assert added["data.db"] == {"path": "data.db", "after": NOT_SHOWN}
    assert added["metadata.name"]["after"] == "settings"


def test_a_pod_that_arrives_before_its_owner_waits_for_it() -> None:
    web = deployment()
    replica_set = owned("ReplicaSet", "web-2", web, "apps/v1")
    pod = owned("Pod", "web-2-x", replica_set)
    cache = cache_of(web, pod, kinds=WORKLOAD_KINDS)  # the ReplicaSet's event is still on its way
    plan = plan_for(Change("Pod", None, pod), cache, CHECKS)
    assert plan is not None and plan.workloads is not None
    assert ("ReplicaSet", "shop", "web-2") in plan.workloads
    judged = {str(r.subject) for r in evaluate_plan(plan, cache, CHECKS, _context)}
    assert not [s for s in judged if s.startswith("Pod/")], judged  # not a workload of its own

    change = cache.put(replica_set)
    assert change is not None
    plan = plan_for(change, cache, CHECKS)
    assert plan is not None and plan.workloads is not None
    assert ("Deployment", "shop", "web") in plan.workloads
    judged = {r.subject.kind for r in evaluate_plan(plan, cache, CHECKS, _context)}
    assert judged <= {"Deployment", "Cluster"}, judged


def test_a_scan_keeps_the_verdicts_it_repeats_and_replaces_those_that_moved() -> None:
    plan = Plan(frozenset(c.spec.id for c in CHECKS if c.spec.scope in ("container", "workload")))
    cache = cache_of(deployment("web"), deployment("api"), kinds=WORKLOAD_KINDS)
    last = verdicts_of(evaluate_plan(plan, cache, CHECKS, _context))
    cache.put(deployment("api", privileged=True, version="2"))
    fresh = verdicts_of(evaluate_plan(plan, cache, CHECKS, _context), last)
    assert fresh.keys() == last.keys()
    kept = {fp for fp in fresh if fresh[fp] is last[fp]}
    moved = {fp for fp in fresh if fresh[fp] != last[fp]}
    assert moved and not moved & kept
    assert {(last[fp].check.id, last[fp].subject.name) for fp in moved} >= {
        ("pss.privileged", "api")
    }
    assert {fresh[fp].subject.name for fp in kept} >= {"web", "api"}
    assert fresh == verdicts_of(evaluate_plan(plan, cache, CHECKS, _context))  # same verdicts
