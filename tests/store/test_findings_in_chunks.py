"""Finding rows are written a chunk at a time (store/lifecycle.py): however the rows of
one scan fall into chunks, its findings open, stay open, resolve and close as deleted as
they would in one statement, and the release of a caller's results leaves the record
whole."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from store_helpers import deployment, record, scan_of

from databases import Database
from kubeproof.store import lifecycle
from kubeproof.store.db import Store, open_store
from kubeproof.store.record import present_subjects, record_scan
from kubeproof.store.schema import FindingEventRow, FindingRow

PRIVILEGED = "pss.privileged"
NAMES = [f"app-{n}" for n in range(7)]


@pytest.fixture
def store(database: Database) -> Iterator[Store]:
    opened = open_store(database.url)
    yield opened
    opened.close()


def _states(store: Store) -> dict[str, tuple[str, int, int | None]]:
    with store.reading() as session:
        rows = session.query(FindingRow).filter_by(check_id=PRIVILEGED).all()
        return {row.name: (row.state, row.last_scan_id, row.closed_scan_id) for row in rows}


def _events(store: Store) -> list[tuple[str, int]]:
    with store.reading() as session:
        rows = session.query(FindingEventRow).order_by(FindingEventRow.id).all()
        return [(row.event, row.scan_id) for row in rows]


def _scans(store: Store) -> None:
    first = [deployment(name, privileged=True, uid=f"u-{name}") for name in NAMES]
    opened = record(store, *first, day=0)
    # Two fixed, one deleted, the rest still failing.
    second = [
        deployment(name, privileged=number >= 2, uid=f"u-{name}")
        for number, name in enumerate(NAMES)
        if name != "app-6"
    ]
    later = record(store, *second, day=1)
    assert opened.opened > len(NAMES)  # other checks fail too: several chunks of two
    # Every app fails the same checks; only pss.privileged resolves, on two of them.
    assert (later.resolved, later.deleted) == (2, opened.opened // len(NAMES))


def test_findings_written_two_at_a_time_move_as_written_at_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lifecycle, "_CHUNK", 2)
    _scans(store)
    states = _states(store)
    assert states == {
        "app-0": ("resolved", 1, 2),
        "app-1": ("resolved", 1, 2),
        **{f"app-{n}": ("open", 2, None) for n in range(2, 6)},
        "app-6": ("deleted", 1, 2),
    }
    events = _events(store)
    assert events.count(("resolved", 2)) >= 2 and events.count(("deleted", 2)) >= 1
    assert [event for event, scan in events if scan == 1] == ["opened"] * len(
        [e for e in events if e[1] == 1]
    )


def test_released_results_are_recorded_in_full(store: Store) -> None:
    report, inventory = scan_of(*(deployment(name, uid=f"u-{name}") for name in NAMES))
    count = len(report.results)
    recorded = record_scan(
        store, report, cluster="prod", present=present_subjects(inventory), release_results=True
    )
    assert report.results == [] and recorded.results == count > 0
    with store.reading() as session:
        assert session.query(FindingRow).filter_by(check_id=PRIVILEGED).count() == len(NAMES)
