"""Kubernetes label selectors: matchLabels and matchExpressions, and the Service form."""

from __future__ import annotations

from typing import Any

from kubeproof.inventory.objects import as_list


def selector_matches(selector: Any, labels: dict[str, str]) -> bool:
    """Whether a LabelSelector selects these labels. An empty selector selects everything
    (true of NetworkPolicies and policy/v1 budgets; Services use `map_selector_matches`).

    A malformed selector selects nothing: the API server would have rejected it, and reading
    more into it than it says would make a policy look broader than it is.
    """
    if not isinstance(selector, dict):
        return False
    match_labels = selector.get("matchLabels")
    expressions = selector.get("matchExpressions")
    if match_labels is not None:
        if not isinstance(match_labels, dict):
            return False
        for key, value in match_labels.items():
            if labels.get(key) != value:
                return False
    if expressions is not None:
        if not isinstance(expressions, list):
            return False
        for expression in expressions:
            if _expression_problem(expression) or not _expression_matches(expression, labels):
                return False
    return True


_SET_OPERATORS = frozenset({"In", "NotIn"})
_EXISTS_OPERATORS = frozenset({"Exists", "DoesNotExist"})


def label_selector_problem(selector: Any, field: str) -> str | None:
    """Why the API server would reject this LabelSelector, or None when it is well formed.

    `None` (a missing selector) is well formed here; callers decide what a missing one means.
    """
    if selector is None:
        return None
    if not isinstance(selector, dict):
        return f"{field} is not a mapping"
    match_labels = selector.get("matchLabels")
    if match_labels is not None:
        if not isinstance(match_labels, dict):
            return f"{field}.matchLabels is not a mapping"
        for key, value in match_labels.items():  # a loop, not all(): selectors are many
            if not isinstance(key, str) or not isinstance(value, str):
                return f"{field}.matchLabels has a value that is not a string"
    expressions = selector.get("matchExpressions")
    if expressions is None:
        return None
    if not isinstance(expressions, list):
        return f"{field}.matchExpressions is not a list"
    for index, expression in enumerate(expressions):
        problem = _expression_problem(expression)
        if problem is not None:
            return f"{field}.matchExpressions[{index}] {problem}"
    return None


def _expression_problem(expression: Any) -> str | None:
    if not isinstance(expression, dict):
        return "is not a mapping"
    if not isinstance(expression.get("key"), str):
        return "has no key"
    operator = expression.get("operator")
    values = expression.get("values")
    if values is not None and not (
        isinstance(values, list) and all(isinstance(v, str) for v in values)
    ):
        return "has values that are not a list of strings"
    if operator in _SET_OPERATORS:
        return None if values else f"uses {operator} without values"
    if operator in _EXISTS_OPERATORS:
        return f"uses {operator} with values" if values else None
    return f"has an unknown operator {operator!r}"


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
