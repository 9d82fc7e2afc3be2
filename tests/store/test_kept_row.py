"""What a scan keeps of each result until its findings are decided (store/record.py
KeptRow): the fields of the dict it replaces, read the same way."""

from __future__ import annotations

import pytest
from store_helpers import deployment, scan_of

from kubeproof.store.record import _KEPT, _KEPT_FAILING, KeptRow, result_values


def test_a_kept_row_reads_like_the_dict_of_its_fields() -> None:
    report, _ = scan_of(deployment(privileged=True))
    rows = [result_values(result) for result in report.results]
    statuses = {row["status"] for row in rows}
    assert {"fail", "pass"} <= statuses
    for row in rows:
        fields = _KEPT_FAILING if row["status"] == "fail" else _KEPT
        kept = KeptRow(row)
        assert dict(kept) == {name: row[name] for name in fields}
        assert len(kept) == len(fields) and kept.get("details", "none") == "none"
        with pytest.raises(KeyError):
            kept["path"]
        if row["status"] != "fail":
            with pytest.raises(KeyError):
                kept["message"]
