"""Evidence databases for tests: the store, agent and period-report suites run on SQLite
and on a real PostgreSQL server (tests/postgres.py), through the fixtures in
tests/conftest.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from kubeproof.store.db import parse_url
from postgres import PostgresServer


def query(url: str, statement: str) -> Sequence[Any]:
    """The rows one SQL statement reads from the store at `url`, on a connection of its own."""
    engine = create_engine(parse_url(url))
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(statement)))
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Database:
    """One empty evidence database for one test."""

    backend: str
    url: str
    path: Path | None = None  # the SQLite file
    server: PostgresServer | None = None
    name: str = ""

    def stored_text(self) -> str:
        """Every byte the database keeps, as text: the SQLite files, or a pg_dump."""
        if self.server is not None:
            return self.server.dump(self.name)
        assert self.path is not None
        parts = [
            p.read_bytes() for p in self.path.parent.iterdir() if p.name.startswith(self.path.name)
        ]
        return b"".join(parts).decode("latin-1")
