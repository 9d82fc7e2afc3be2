"""record_scan's results digest, worked out one line at a time, is the ledger's
results_digest (what `evidence verify` recomputes), whatever the rows and however many
share a fingerprint."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kubeproof.store import ledger
from kubeproof.store.record import _results_digest

_text = st.text(max_size=120)
_row = st.fixed_dictionaries(
    {
        # The engine's (hex), others that sort as they are, and any text (escaped, or
        # sorting after the quote that ends it in a line).
        "fingerprint": st.sampled_from(["a" * 32, "a" * 31 + "b", "c" * 32, "a" * 31, "A1z"])
        | st.text(alphabet="0123456789abcdef", max_size=33)
        | st.text(max_size=4),
        "check_id": st.sampled_from(["pss.privileged", "pss.privileged-long-name" * 4]),
        "status": st.sampled_from(["pass", "fail", "not_evaluated", "excepted"]),
        "severity": st.sampled_from(["low", "high"]),
        "api_version": st.just("apps/v1"),
        "kind": st.sampled_from(["Deployment", "Pod"]),
        "namespace": _text,
        "name": _text,
        "container": _text,
        "message": _text,
        "path": st.none() | _text,
        "reason": st.none() | _text,
        "location_file": st.none() | _text,
        "location_line": st.none() | st.integers(0, 10**6),
        "details": st.none() | st.dictionaries(st.text(max_size=8), _text, max_size=3),
    }
)


@given(st.lists(_row, max_size=40))
def test_the_digest_equals_the_ledgers(rows: list[dict[str, Any]]) -> None:
    made_again = 0

    def row_at(index: int) -> dict[str, Any]:
        nonlocal made_again
        made_again += 1
        return rows[index]

    assert _results_digest(iter(rows), row_at) == ledger.results_digest(rows)
    assert made_again == len(rows)
