"""What `vulndb update` stores per (ecosystem, package) of an advisory: osv.matching_details'
small JSON document with each entry's severity rating added (the `affected` rows), and,
where the ecosystem has stored version keys, the same advisory ready to match: its
entries' ranges compiled into those keys, with what a finding reports (the rows that
`package_index` aggregates per package)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubeproof.inventory.objects import as_dict, as_list
from kubeproof.vulndb.osv import matching_details
from kubeproof.vulndb.severity import Rating, rate
from kubeproof.vulndb.stored_keys import ceiling, compile_entry_stored, stored_key


@dataclass(frozen=True)
class ReadyAdvisory:
    """An advisory ready to match one package: `payload` is JSON [id, [[compiled entry,
    rating], ...], aliases, summary, published]; `ceiling` and `versions` (JSON) tell
    which installed versions need it decoded at all (stored_keys.ceiling)."""

    ceiling: str | None
    versions: str
    payload: str


@dataclass(frozen=True)
class IndexedRow:
    ecosystem: str
    package: str
    detail: str  # JSON: aliases, summary, published, entries (ranges, versions, rating)
    ready: ReadyAdvisory | None  # None: no stored keys (ranges compiled when matching)


def _ratings_by_package(record: dict[str, Any]) -> dict[tuple[str, str], list[Rating]]:
    """Each affected[] entry's rating, grouped by the (ecosystem, package) matching_details
    files it under (asked of matching_details itself, entry by entry, so that the pairing
    follows its grouping rules). Most records rate every entry alike: one call then."""
    entries = [as_dict(entry) for entry in as_list(record.get("affected"))]
    ratings = [rate(record, entry) for entry in entries]
    if len(set(ratings)) <= 1:
        return {}
    grouped: dict[tuple[str, str], list[Rating]] = {}
    for entry, rating in zip(entries, ratings, strict=True):
        for ecosystem, name, _ in matching_details({**record, "affected": [entry]}):
            grouped.setdefault((ecosystem, name), []).append(rating)
    return grouped


def indexed_rows(record: dict[str, Any]) -> list[IndexedRow]:
    by_package = _ratings_by_package(record)
    alike = rate(record, as_dict((as_list(record.get("affected")) or [{}])[0]))
    rows = []
    for ecosystem, name, text in matching_details(record):
        detail = json.loads(text)
        entries = [as_dict(e) for e in as_list(detail.get("entries"))]
        ratings = by_package.get((ecosystem, name), [])
        if len(ratings) != len(entries):
            ratings = [alike] * len(entries)
        for entry, rating in zip(entries, ratings, strict=True):
            entry["rating"] = rating.as_row()
        ready = None
        key_of = stored_key(ecosystem)
        if key_of is not None:
            stored = [compile_entry_stored(e, key_of) for e in entries]
            compiled = [[entry, e["rating"]] for entry, e in zip(stored, entries, strict=True)]
            shared = [detail.get("aliases"), detail.get("summary"), detail.get("published")]
            payload = json.dumps([record["id"], compiled, *shared], separators=(",", ":"))
            versions = sorted({v for entry in stored for v in entry[1]})
            ready = ReadyAdvisory(ceiling(stored), json.dumps(versions), payload)
        text = json.dumps(detail, separators=(",", ":"))
        rows.append(IndexedRow(ecosystem, name, text, ready))
    return rows
