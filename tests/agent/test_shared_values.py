"""Equal parts of cached objects held once (agent/shared.py): a shared value is always
equal to what it stands for, equal parts are the same instance, and the table forgets
what no object holds any more."""

from __future__ import annotations

import copy
import gc
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kubeproof.agent.shared import SharedValues

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=30,
)


def _typed(value: Any) -> Any:
    """The value with every scalar's type spelled out: True, 1 and 1.0 compare equal."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    return (type(value).__name__, value)


@given(json_values, json_values)
def test_a_shared_value_is_what_it_stands_for_whatever_came_before(first: Any, second: Any) -> None:
    table = SharedValues()
    shared_first = table.share(copy.deepcopy(first))
    shared_second = table.share(copy.deepcopy(second))
    assert _typed(shared_first) == _typed(first)
    assert _typed(shared_second) == _typed(second)
    assert json.dumps(shared_second) == json.dumps(second)  # key order kept too


def test_equal_parts_are_one_instance_and_lookalike_scalars_stay_apart() -> None:
    table = SharedValues()
    container = {"name": "web", "securityContext": {"privileged": False}, "ports": [80]}
    deployment = table.share({"template": {"spec": {"containers": [copy.deepcopy(container)]}}})
    pod = table.share({"containers": [copy.deepcopy(container)], "nodeName": "n1"})
    assert pod["containers"] is deployment["template"]["spec"]["containers"]
    assert table.share(copy.deepcopy(container)) is pod["containers"][0]
    flags = [table.share({"v": value}) for value in (1, True, 1.0, "1", None, 0, False)]
    assert [type(flag["v"]) for flag in flags] == [int, bool, float, str, type(None), int, bool]
    assert table.share(["a", ["b"]]) is not table.share(["a", "b"])


def test_the_table_forgets_what_no_object_holds_and_keeps_the_rest() -> None:
    table = SharedValues()
    kept = [table.share({"spec": {"replicas": n, "labels": {"app": "web"}}}) for n in range(3)]
    dropped = [table.share({"spec": {"replicas": -n - 1, "x": [n]}}) for n in range(5000)]
    held = len(table)
    del dropped
    gc.collect()
    for n in range(held):  # until the table has doubled since its last sweep, and sweeps
        table.share({"spec": {"replicas": 10_000 + n}})
        if len(table) < held:
            break
    assert len(table) < len(kept) * 3 + 10
    # What objects still hold is still shared: an equal value is the same instance.
    assert table.share({"spec": {"replicas": 1, "labels": {"app": "web"}}}) is kept[1]
    assert [item["spec"]["replicas"] for item in kept] == [0, 1, 2]
