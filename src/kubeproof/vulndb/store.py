"""The local OSV database: SQLite, one row per advisory and an index of the packages each
affects keyed by (ecosystem, package). A source (an OSV ecosystem archive) is replaced in
one transaction, so a failed update leaves the previous data intact. It also remembers,
per image digest, when each advisory was first matched (`disclosures`) and when the image
was last matched (`image_matches`): what `kubeproof image rescan` reports as new."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import astuple, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from kubeproof.vulndb.indexing import indexed_rows
from kubeproof.vulndb.stored_keys import fingerprint

# 2: affected rows carry what matching needs (no record parse); 3: ranges compiled into
# stored version keys, severity ratings computed at load time.
SCHEMA_VERSION = "3"
_KEYS_PREFIX = "keys:"  # meta rows: the fingerprint of each ecosystem's stored keys
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY, url TEXT NOT NULL, updated_at TEXT NOT NULL,
    advisories INTEGER NOT NULL, rejected INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS advisories (
    source TEXT NOT NULL, id TEXT NOT NULL, record TEXT NOT NULL, PRIMARY KEY (source, id));
CREATE TABLE IF NOT EXISTS affected (
    source TEXT NOT NULL, ecosystem TEXT NOT NULL, package TEXT NOT NULL,
    advisory_id TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS affected_by_package ON affected (ecosystem, package);
CREATE TABLE IF NOT EXISTS package_index (
    source TEXT NOT NULL, ecosystem TEXT NOT NULL, package TEXT NOT NULL,
    ceilings TEXT NOT NULL, versions TEXT NOT NULL, advisories TEXT NOT NULL,
    PRIMARY KEY (ecosystem, package, source));
CREATE TABLE IF NOT EXISTS package_changes (
    ecosystem TEXT NOT NULL, package TEXT NOT NULL, changed_at TEXT NOT NULL,
    PRIMARY KEY (ecosystem, package));
CREATE TABLE IF NOT EXISTS image_matches (
    image_digest TEXT PRIMARY KEY, reference TEXT NOT NULL, matched_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS disclosures (
    image_digest TEXT NOT NULL, advisory_id TEXT NOT NULL, first_seen TEXT NOT NULL,
    PRIMARY KEY (image_digest, advisory_id));
"""


_DROP_DOWNLOADED = """
DROP TABLE IF EXISTS affected; DROP TABLE IF EXISTS advisories; DROP TABLE IF EXISTS sources;
DROP TABLE IF EXISTS package_changes; DROP TABLE IF EXISTS package_index;
DELETE FROM meta WHERE key LIKE 'keys:%';
"""


@dataclass(frozen=True)
class PackageAdvisories:
    """One package's advisories as package_index holds them, in parallel lists."""

    ceilings: list[str | None]
    versions: list[frozenset[str]]
    payloads: list[str]


@dataclass(frozen=True)
class AffectedRow:
    """What matching needs of one advisory for one (ecosystem, package): decoded from one
    small JSON document, never the whole record."""

    advisory_id: str
    detail: dict[str, Any]


class VulnDbError(Exception):
    """The vulnerability database is missing, unreadable or from another version."""


@dataclass(frozen=True)
class SourceStatus:
    source: str
    url: str
    updated_at: datetime
    advisories: int
    rejected: int


def default_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kubeproof" / "osv.sqlite3"


class VulnDb:
    def __init__(self, path: Path, create: bool = False) -> None:
        self.path = path
        if not create and not path.is_file():
            raise VulnDbError(
                f"no vulnerability database at {path}: run `kubeproof vulndb update` first"
            )
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._connection = sqlite3.connect(path)
            if not create and not self._holds_a_schema():
                # Some other file: a reader must not turn it into a database.
                self._connection.close()
                raise VulnDbError(f"{path}: not a kubeproof vulnerability database")
            with self._connection:
                self._connection.executescript(_SCHEMA)
                version = self._connection.execute(
                    "SELECT value FROM meta WHERE key = 'schema'"
                ).fetchone()
                if version is None:
                    self._connection.execute(
                        "INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,)
                    )
                elif version[0] != SCHEMA_VERSION and create:
                    # Downloaded data in an older layout: dropped, to be loaded again. What
                    # kubeproof recorded itself (first-seen dates) is kept.
                    self._connection.executescript(_DROP_DOWNLOADED)
                    self._connection.executescript(_SCHEMA)
                    self._connection.execute(
                        "UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,)
                    )
                elif version[0] != SCHEMA_VERSION:
                    raise VulnDbError(
                        f"{path}: database schema {version[0]}, this kubeproof "
                        f"reads {SCHEMA_VERSION}: run `kubeproof vulndb update`"
                    )
        except sqlite3.DatabaseError as error:
            raise VulnDbError(f"{path}: not a readable vulnerability database ({error})") from None

    def _holds_a_schema(self) -> bool:
        found = self._connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        return found is not None

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> VulnDb:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def replace_source(
        self, source: str, url: str, records: Iterable[dict[str, Any]], rejected: Callable[[], int]
    ) -> int:
        """Swap in a source's advisories atomically; returns how many were stored. The
        (ecosystem, package) pairs whose advisories changed (added, removed, or with other
        ranges) are stamped in package_changes: a rescan re-matches only those."""
        count = 0
        now = datetime.now(UTC).isoformat()
        with self._connection:
            before = {
                (ecosystem, package, advisory, hash(detail))
                for ecosystem, package, advisory, detail in self._connection.execute(
                    "SELECT ecosystem, package, advisory_id, detail FROM affected WHERE source = ?",
                    (source,),
                )
            }
            after: set[tuple[str, str, str, int]] = set()
            bases: set[str] = set()
            self._connection.execute("DELETE FROM advisories WHERE source = ?", (source,))
            self._connection.execute("DELETE FROM affected WHERE source = ?", (source,))
            self._connection.execute("DELETE FROM package_index WHERE source = ?", (source,))
            self._connection.execute(
                "CREATE TEMP TABLE IF NOT EXISTS staged "
                "(ecosystem, package, advisory_id, ceiling, versions, payload)"
            )
            for record in records:
                self._connection.execute(
                    "INSERT OR REPLACE INTO advisories VALUES (?, ?, ?)",
                    (source, record["id"], json.dumps(record, separators=(",", ":"))),
                )
                indexed = indexed_rows(record)
                rows = [
                    (source, row.ecosystem, row.package, record["id"], row.detail)
                    for row in indexed
                ]
                self._connection.executemany("INSERT INTO affected VALUES (?, ?, ?, ?, ?)", rows)
                self._connection.executemany(
                    "INSERT INTO staged VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (row.ecosystem, row.package, record["id"], *astuple(row.ready))
                        for row in indexed
                        if row.ready is not None
                    ],
                )
                bases.update(row.ecosystem.split(":", 1)[0] for row in indexed if row.ready)
                after.update((row[1], row[2], row[3], hash(row[4])) for row in rows)
                count += 1
            # One row per package: matching reads and decodes it once (the subquery's order
            # is group_concat's, advisories by id).
            self._connection.execute(
                "INSERT INTO package_index SELECT ?, ecosystem, package, "
                "json_group_array(ceiling), '[' || group_concat(versions, ',') || ']', "
                "json_group_array(payload) FROM "
                "(SELECT * FROM staged ORDER BY ecosystem, package, advisory_id) "
                "GROUP BY ecosystem, package",
                (source,),
            )
            self._connection.execute("DROP TABLE staged")
            changed = {(ecosystem, package) for ecosystem, package, _, _ in before ^ after}
            self._connection.executemany(
                "INSERT OR REPLACE INTO package_changes VALUES (?, ?, ?)",
                [(ecosystem, package, now) for ecosystem, package in sorted(changed)],
            )
            self._connection.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [(_KEYS_PREFIX + base, fingerprint(base)) for base in sorted(bases)],
            )
            self._connection.execute(
                "INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?)",
                (source, url, now, count, rejected()),
            )
        return count

    def package_changes(self) -> dict[tuple[str, str], datetime]:
        """When the advisories of each (ecosystem, package) last changed in an update."""
        rows = self._connection.execute(
            "SELECT ecosystem, package, changed_at FROM package_changes"
        )
        return {(e, p): datetime.fromisoformat(changed) for e, p, changed in rows}

    def advisories_for(self, ecosystems: Iterable[str], package: str) -> Iterator[dict[str, Any]]:
        wanted = list(ecosystems)
        placeholders = ", ".join("?" for _ in wanted)
        with closing(
            self._connection.execute(
                f"SELECT DISTINCT a.record FROM affected f JOIN advisories a "
                f"ON a.source = f.source AND a.id = f.advisory_id "
                f"WHERE f.ecosystem IN ({placeholders}) AND f.package = ? ORDER BY a.id",
                (*wanted, package),
            )
        ) as cursor:
            for (text,) in cursor:
                yield json.loads(text)

    def last_update(self) -> datetime | None:
        """When the most recently loaded source was loaded."""
        times = [status.updated_at for status in self.sources()]
        return max(times) if times else None

    def last_match(self, image_digest: str) -> datetime | None:
        row = self._connection.execute(
            "SELECT matched_at FROM image_matches WHERE image_digest = ?", (image_digest,)
        ).fetchone()
        return datetime.fromisoformat(row[0]) if row else None

    def first_seen(self, image_digest: str) -> dict[str, datetime]:
        rows = self._connection.execute(
            "SELECT advisory_id, first_seen FROM disclosures WHERE image_digest = ?",
            (image_digest,),
        )
        return {advisory: datetime.fromisoformat(seen) for advisory, seen in rows}

    def seen_advisories(self, image_digest: str) -> set[str]:
        rows = self._connection.execute(
            "SELECT advisory_id FROM disclosures WHERE image_digest = ?", (image_digest,)
        )
        return {advisory for (advisory,) in rows}

    def record_match(
        self, image_digest: str, reference: str, advisory_ids: Iterable[str], now: datetime
    ) -> None:
        """Remember that `image_digest` matched these advisories at `now` (advisories seen
        before keep their first-seen date)."""
        stamp = now.isoformat()
        try:
            with self._connection:
                self._connection.executemany(
                    "INSERT OR IGNORE INTO disclosures VALUES (?, ?, ?)",
                    [(image_digest, advisory, stamp) for advisory in sorted(set(advisory_ids))],
                )
                self._connection.execute(
                    "INSERT OR REPLACE INTO image_matches VALUES (?, ?, ?)",
                    (image_digest, reference, stamp),
                )
        except sqlite3.DatabaseError as error:  # a read-only or full disk
            raise VulnDbError(f"{self.path}: cannot record the match ({error})") from None

    def affected_rows(self, ecosystems: Iterable[str], package: str) -> list[AffectedRow]:
        """The advisories naming `package` in any of `ecosystems`, withdrawn ones excluded
        (they are not indexed), ordered by id."""
        wanted = list(ecosystems)
        placeholders = ", ".join("?" for _ in wanted)
        rows = self._connection.execute(
            f"SELECT advisory_id, detail FROM affected WHERE ecosystem IN ({placeholders}) "
            "AND package = ? ORDER BY advisory_id",
            (*wanted, package),
        )
        return [AffectedRow(advisory, json.loads(detail)) for advisory, detail in rows]

    def package_advisories(
        self, ecosystems: Iterable[str], package: str
    ) -> list[PackageAdvisories]:
        """The advisories naming `package`, one PackageAdvisories per ecosystem of
        `ecosystems` that has any (from ecosystems with stored keys), each ordered by id and
        still JSON text (see indexing.ReadyAdvisory)."""
        wanted = list(ecosystems)
        placeholders = ", ".join("?" for _ in wanted)
        rows = self._connection.execute(
            f"SELECT ceilings, versions, advisories FROM package_index "
            f"WHERE ecosystem IN ({placeholders}) AND package = ?",
            (*wanted, package),
        )
        return [
            PackageAdvisories(
                orjson.loads(ceilings),
                [frozenset(v) for v in orjson.loads(versions)],
                orjson.loads(payloads),
            )
            for ceilings, versions, payloads in rows
        ]

    def key_fingerprints(self) -> dict[str, str]:
        """Per ecosystem, the fingerprint of the key function its stored keys came from."""
        rows = self._connection.execute(
            "SELECT key, value FROM meta WHERE key LIKE ?", (_KEYS_PREFIX + "%",)
        )
        return {key.removeprefix(_KEYS_PREFIX): value for key, value in rows}

    def sources(self) -> list[SourceStatus]:
        rows = self._connection.execute(
            "SELECT source, url, updated_at, advisories, rejected FROM sources ORDER BY source"
        )
        return [
            SourceStatus(source, url, datetime.fromisoformat(updated), count, rejected)
            for source, url, updated, count, rejected in rows
        ]


@contextmanager
def open_db(path: Path | None = None, create: bool = False) -> Iterator[VulnDb]:
    database = VulnDb(path or default_path(), create)
    try:
        yield database
    finally:
        database.close()
