"""The store suite runs twice: on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from postgres import PostgresServer, find_bin, start


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if find_bin() is None:
        message = "PostgreSQL server binaries missing: run scripts/postgres.sh (make test-tools)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = start()
    yield server
    server.stop()


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


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        path = tmp_path / "evidence.db"
        return Database("sqlite", f"sqlite:///{path}", path=path)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    return Database("postgresql", server.url(name), server=server, name=name)
