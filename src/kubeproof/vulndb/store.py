"""The local OSV database: SQLite, one row per advisory and an index of the packages each
affects keyed by (ecosystem, package). A source (an OSV ecosystem archive) is replaced in
one transaction, so a failed update leaves the previous data intact."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubeproof.vulndb.osv import affected_packages

SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY, url TEXT NOT NULL, updated_at TEXT NOT NULL,
    advisories INTEGER NOT NULL, rejected INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS advisories (
    source TEXT NOT NULL, id TEXT NOT NULL, record TEXT NOT NULL, PRIMARY KEY (source, id));
CREATE TABLE IF NOT EXISTS affected (
    source TEXT NOT NULL, ecosystem TEXT NOT NULL, package TEXT NOT NULL,
    advisory_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS affected_by_package ON affected (ecosystem, package);
"""


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
            with self._connection:
                self._connection.executescript(_SCHEMA)
                version = self._connection.execute(
                    "SELECT value FROM meta WHERE key = 'schema'"
                ).fetchone()
                if version is None:
                    self._connection.execute(
                        "INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,)
                    )
                elif version[0] != SCHEMA_VERSION:
                    raise VulnDbError(
                        f"{path}: database schema {version[0]}, this kubeproof "
                        f"reads {SCHEMA_VERSION}: run `kubeproof vulndb update`"
                    )
        except sqlite3.DatabaseError as error:
            raise VulnDbError(f"{path}: not a readable vulnerability database ({error})") from None

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> VulnDb:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def replace_source(
        self, source: str, url: str, records: Iterable[dict[str, Any]], rejected: Callable[[], int]
    ) -> int:
        """Swap in a source's advisories atomically; returns how many were stored."""
        count = 0
        with self._connection:
            self._connection.execute("DELETE FROM advisories WHERE source = ?", (source,))
            self._connection.execute("DELETE FROM affected WHERE source = ?", (source,))
            for record in records:
                self._connection.execute(
                    "INSERT OR REPLACE INTO advisories VALUES (?, ?, ?)",
                    (source, record["id"], json.dumps(record, separators=(",", ":"))),
                )
                self._connection.executemany(
                    "INSERT INTO affected VALUES (?, ?, ?, ?)",
                    [
                        (source, ecosystem, package, record["id"])
                        for ecosystem, package in affected_packages(record)
                    ],
                )
                count += 1
            self._connection.execute(
                "INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?)",
                (source, url, datetime.now(UTC).isoformat(), count, rejected()),
            )
        return count

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
