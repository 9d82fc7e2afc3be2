"""Kubernetes label selectors: matchLabels and matchExpressions, and the Service form."""

from __future__ import annotations

from typing import Any

from kubeproof.inventory.objects import as_dict, as_list


def selector_matches(selector: Any, labels: dict[str, str]) -> bool:
    """Whether a LabelSelector selects these labels. An empty selector selects everything.

    A malformed selector selects nothing: reading more into it than it says would make a
    policy look broader (or narrower) than the API server would treat it.
    """
    if not isinstance(selector, dict):
        return False
    for key, value in as_dict(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for expression in as_list(selector.get("matchExpressions")):
        if not isinstance(expression, dict) or not _expression_matches(expression, labels):
            return False
    return True


def _expression_matches(expression: dict[str, Any], labels: dict[str, str]) -> bool:
    key = expression.get("key")
    operator = expression.get("operator")
    values = [v for v in as_list(expression.get("values")) if isinstance(v, str)]
    if not isinstance(key, str):
        return False
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return False


def map_selector_matches(selector: Any, labels: dict[str, str]) -> bool:
    """The plain map selector of Services and ReplicationControllers (empty selects nothing)."""
    if not isinstance(selector, dict) or not selector:
        return False
    return all(labels.get(k) == v for k, v in selector.items())
