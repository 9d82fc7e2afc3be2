"""Run one check (or all) over plain manifests, for check tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from kubeproof.checks import catalogue, find
from kubeproof.engine import Context, evaluate
from kubeproof.inventory import Inventory, K8sObject
from kubeproof.model import Location, Result, Status


def inventory_of(*objects: dict[str, Any] | str) -> Inventory:
    """An inventory from dicts or YAML strings (multi-document allowed)."""
    parsed: list[K8sObject] = []
    for item in objects:
        docs = yaml.safe_load_all(item) if isinstance(item, str) else [item]
        parsed.extend(K8sObject.from_raw(d, Location("test.yaml", 1)) for d in docs if d)
    return Inventory(parsed)


def run(check_id: str, *objects: dict[str, Any] | str, **context: Any) -> list[Result]:
    """The check's results per subject. The engine's one-per-check note about kinds that
    could not be read (subject Cluster) is left out here; tests/test_engine.py covers it."""
    check = find(check_id)
    assert check is not None, f"no check {check_id}"
    inventory = inventory_of(*objects)
    results = evaluate(inventory, [check], Context(inventory, **context))
    return results if check.spec.scope == "cluster" else per_subject(results)


def per_subject(results: Iterable[Result]) -> list[Result]:
    """Results without the engine's once-per-check notes about unread kinds."""
    return [r for r in results if r.subject.kind != "Cluster"]


def statuses(results: Iterable[Result]) -> list[str]:
    return [r.status.value for r in results]


def failing(results: Iterable[Result]) -> list[Result]:
    return [r for r in results if r.status is Status.FAIL]


def run_all(*objects: dict[str, Any] | str, **context: Any) -> list[Result]:
    inventory = inventory_of(*objects)
    return evaluate(inventory, catalogue(), Context(inventory, **context))
