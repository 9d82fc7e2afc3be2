"""The agent's object cache: one copy per object, managedFields dropped, owners folded."""

from __future__ import annotations

from agent_objects import cache_of, deployment, owned

from kubeproof.agent.state import ObjectCache


def test_managed_fields_are_dropped_and_objects_kept_once() -> None:
    web = deployment()
    assert "managedFields" not in web.metadata
    cache = cache_of(web)
    inventory = cache.inventory()
    [held] = inventory.of_kind("Deployment")
    assert held is web  # the inventory references the cached object, not a copy
    assert len(cache) == 1


def test_put_same_version_is_no_change_and_new_version_is() -> None:
    cache = ObjectCache()
    first = cache.put(deployment(version="1"))
    assert first is not None and first.before is None
    assert cache.put(deployment(version="1")) is None
    change = cache.put(deployment(version="2", privileged=True))
    assert change is not None and change.before is not None and change.after is not None
    assert change.before.metadata["resourceVersion"] == "1"


def test_remove_and_relist_report_deletions() -> None:
    web, api = deployment("web"), deployment("api")
    cache = cache_of(web, api)
    changes = cache.replace_kind("Deployment", [deployment("web", version="1")], "listed")
    assert [(c.current.name, c.after is None) for c in changes] == [("api", True)]
    removed = cache.remove(web)
    assert removed is not None and removed.after is None
    assert cache.remove(web) is None
    assert cache.of_kind("Deployment") == []
    assert cache.by_uid("uid-shop-web") is None


def test_pods_fold_into_their_top_owner() -> None:
    web = deployment()
    replica_set = owned("ReplicaSet", "web-1", web, "apps/v1")
    pod = owned("Pod", "web-1-x", replica_set)
    cache = cache_of(web, replica_set, pod)
    assert cache.top_owner(pod) is web
    cache.remove(web)
    assert cache.top_owner(pod) is replica_set  # the owner the cache still knows
