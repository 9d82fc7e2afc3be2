"""When an advisory counts as newly disclosed for an image digest: first seen after the
digest's first match, and it stays so on every later scan (the marker keeps the first
match even when the image was clean then)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from kubeproof.images.assess import record_first_seen
from kubeproof.vulndb.store import VulnDb

DIGEST = "sha256:" + "ab" * 32
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _at(days: int) -> datetime:
    return T0 + timedelta(days=days)


def test_advisories_after_the_first_match_are_new_and_stay_new(tmp_path: Path) -> None:
    with VulnDb(tmp_path / "osv.sqlite3", create=True) as db:
        assert record_first_seen(db, DIGEST, "r/a", {"A"}, _at(0)) == ({"A": _at(0)}, frozenset())
        seen, newly = record_first_seen(db, DIGEST, "r/a", {"A", "B"}, _at(1))
        assert seen == {"A": _at(0), "B": _at(1)} and newly == {"B"}
        assert record_first_seen(db, DIGEST, "r/a", {"A", "B"}, _at(2))[1] == {"B"}


def test_an_image_clean_at_first_match_keeps_its_news(tmp_path: Path) -> None:
    with VulnDb(tmp_path / "osv.sqlite3", create=True) as db:
        assert record_first_seen(db, DIGEST, "r/a", set(), _at(0)) == ({}, frozenset())
        assert record_first_seen(db, DIGEST, "r/a", {"B"}, _at(1))[1] == {"B"}
        assert record_first_seen(db, DIGEST, "r/a", {"B"}, _at(5))[1] == {"B"}


def test_a_digest_matched_before_by_image_scan(tmp_path: Path) -> None:
    with VulnDb(tmp_path / "osv.sqlite3", create=True) as db:
        db.record_match(DIGEST, "r/a", {"A"}, _at(0))  # what `kubeproof image scan` records
        seen, newly = record_first_seen(db, DIGEST, "r/a", {"A", "B"}, _at(3))
        assert seen == {"A": _at(0), "B": _at(3)} and newly == {"B"}
