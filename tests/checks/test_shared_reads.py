"""What checks read once per scan and share (the Pod Security view of each workload,
parsed images, ServiceAccounts, LimitRange defaults, budget and workload indexes) must
still give each subject its own verdict, with the same reasons a fresh reading gives."""

from __future__ import annotations

from typing import Any

from checks.helpers import inventory_of, run
from kubeproof.checks import catalogue
from kubeproof.engine import Context, evaluate
from kubeproof.model import Result, Status


def pod(
    name: str, containers: list[dict[str, Any]], namespace: str = "shop", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"containers": containers, **spec},
    }


def deployment(
    name: str, labels: dict[str, str], namespace: str = "shop", replicas: int = 2
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "app:1"}]},
            },
        },
    }


def budget(name: str, selector: dict[str, Any], namespace: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"minAvailable": 1, "selector": selector},
    }


def by_name(results: list[Result]) -> dict[str, Result]:
    return {f"{r.subject.namespace}/{r.subject.name}/{r.subject.container}": r for r in results}


def verdict(results: list[Result], name: str) -> tuple[str, str]:
    (found,) = [r for r in results if r.subject.name == name]
    return found.status.value, found.message


# --- Pod Security: one view per workload, errors raised where each check meets them -----


def test_a_bad_field_is_reported_where_each_check_reads_it() -> None:
    """privileged reads container by container, so the first container's bad field is
    what it meets; run-as-user reads every securityContext first, so it meets the second
    container's unreadable securityContext before any field."""
    containers: list[dict[str, Any]] = [
        {"name": "a", "image": "a:1", "securityContext": {"privileged": "yes"}},
        {"name": "b", "image": "b:1", "securityContext": "root"},
    ]
    mixed = pod("mixed", containers)
    results = run("pss.privileged", mixed)
    assert [(r.status, r.message) for r in results] == [
        (
            Status.NOT_EVALUATED,
            "not evaluated: containers[0].securityContext.privileged is a string, not a boolean",
        )
    ]
    results = run("pss.run-as-user", mixed)
    assert [(r.status, r.message) for r in results] == [
        (
            Status.NOT_EVALUATED,
            "not evaluated: containers[1].securityContext is a string, not a mapping",
        )
    ]


def test_a_bad_pod_security_context_comes_before_any_container() -> None:
    containers = [{"name": "a", "image": "a:1", "securityContext": "root"}]
    results = run("pss.run-as-user", pod("bad-pod", containers, securityContext=[1]))
    assert [r.message for r in results] == [
        "not evaluated: securityContext is a list, not a mapping"
    ]


def test_each_workload_gets_its_own_view() -> None:
    """Same names in two namespaces, one privileged: the view of one never answers for
    the other."""
    privileged = [{"name": "app", "image": "a:1", "securityContext": {"privileged": True}}]
    plain = [{"name": "app", "image": "a:1"}]
    results = by_name(
        run("pss.privileged", pod("app", privileged, "one"), pod("app", plain, "two"))
    )
    assert results["one/app/None"].status is Status.FAIL
    assert results["two/app/None"].status is Status.PASS


def test_one_inventory_judged_at_two_versions_keeps_each_version() -> None:
    """The view records the policy version of its scan's context: a second scan of the same
    inventory at another version does not reuse it."""
    unmasked = [{"name": "a", "image": "a:1", "securityContext": {"procMount": "Unmasked"}}]
    inventory = inventory_of(pod("proc", unmasked))
    (check,) = [c for c in catalogue() if c.id == "pss.proc-mount-restricted"]
    old = evaluate(inventory, [check], Context(inventory, pss_version=(1, 34)))
    new = evaluate(inventory, [check], Context(inventory, pss_version=(1, 35)))
    assert [r.status for r in old] == []  # the check did not exist before 1.35
    assert [r.status for r in new] == [Status.FAIL]


# --- workload checks: images, ServiceAccounts and LimitRanges read once per scan -------


def test_images_parsed_once_still_judge_each_container() -> None:
    digest = "sha256:" + "ab" * 32
    containers = [
        {"name": "tagless", "image": "nginx"},
        {"name": "pinned", "image": f"nginx@{digest}"},
        {"name": "tagless-again", "image": " nginx "},
    ]
    results = by_name(run("workload.image-digest", pod("images", containers)))
    assert results["shop/images/tagless"].status is Status.FAIL
    assert results["shop/images/pinned"].status is Status.PASS
    assert results["shop/images/tagless-again"].status is Status.FAIL


def test_service_accounts_are_found_by_namespace_and_name() -> None:
    """A ServiceAccount of the same name elsewhere does not decide; of two with one name
    in one namespace, the first does, as a walk of the namespace would find it."""
    objects = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "runner", "namespace": "quiet"},
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "runner", "namespace": "quiet"},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "runner", "namespace": "loud"},
        },
        pod("a", [{"name": "app", "image": "a:1"}], "quiet", serviceAccountName="runner"),
        pod("b", [{"name": "app", "image": "a:1"}], "loud", serviceAccountName="runner"),
        pod("c", [{"name": "app", "image": "a:1"}], "nowhere", serviceAccountName="runner"),
    ]
    results = run("workload.service-account-token-automount", *objects)
    assert verdict(results, "a")[0] == "pass"
    assert verdict(results, "b")[0] == "fail"
    status, message = verdict(results, "c")
    assert status == "not_evaluated"
    assert "ServiceAccount nowhere/runner" in message


def test_limit_range_defaults_belong_to_their_namespace() -> None:
    limit_range = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "defaults", "namespace": "covered"},
        "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "100m"}}]},
    }
    containers = [{"name": "app", "image": "a:1"}]
    results = run(
        "workload.cpu-request",
        limit_range,
        pod("a", containers, "covered"),
        pod("b", containers, "bare"),
    )
    assert verdict(results, "a")[0] == "pass"
    status, message = verdict(results, "b")
    assert status == "fail"
    assert "no LimitRange in namespace bare" in message


# --- availability: budgets and workloads filed by the labels they require --------------


def test_a_budget_is_found_by_any_label_it_requires() -> None:
    """Budgets are filed under one label they require; a pod carrying the others but not
    that one is not selected, one carrying all is, and a selector with no matchLabels is
    always tried."""
    objects = [
        budget("pair", {"matchLabels": {"team": "web", "app": "front"}}),
        budget("expr", {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}]}),
        deployment("front", {"app": "front", "team": "web"}),
        deployment("half", {"app": "front"}),
        deployment("db", {"tier": "db", "app": "db"}),
        deployment("elsewhere", {"app": "front", "team": "web"}, namespace="other"),
    ]
    results = run("availability.missing-pdb", *objects)
    assert verdict(results, "front")[0] == "pass"
    assert verdict(results, "half")[0] == "fail"
    assert verdict(results, "db")[0] == "pass"
    assert verdict(results, "elsewhere")[0] == "fail"


def test_a_budget_counts_only_the_workloads_it_selects_in_their_order() -> None:
    """Two selected workloads whose pods cannot be counted: the first in the namespace is
    the one named, as when every workload is matched in turn."""
    daemon = deployment("agent", {"app": "x"})
    daemon["kind"] = "DaemonSet"
    job = deployment("batch", {"app": "x"})
    job["kind"], job["apiVersion"] = "Job", "batch/v1"
    objects = [
        budget("guard", {"matchLabels": {"app": "x"}}),
        deployment("other", {"app": "y"}, replicas=1),
        daemon,
        job,
    ]
    (result,) = run("availability.pdb-blocks-eviction", *objects)
    assert result.status is Status.NOT_EVALUATED
    assert "DaemonSet agent" in result.message

    objects = [
        budget("guard", {"matchLabels": {"app": "x"}}),
        deployment("one", {"app": "x"}, replicas=1),
    ]
    objects.append(deployment("unselected", {"app": "y"}, replicas=5))
    (result,) = run("availability.pdb-blocks-eviction", *objects)
    assert result.status is Status.FAIL
    assert "run 1 pod(s)" in result.message
