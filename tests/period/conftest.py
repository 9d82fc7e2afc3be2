"""The period-report suite runs on SQLite and on a real PostgreSQL server, like the store
suite (whose server helper it shares)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))

from postgres import PostgresServer, find_bin, start


@pytest.fixture(scope="session")
def period_postgres() -> Iterator[PostgresServer]:
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
    backend: str
    url: str


def new_database(backend: str, request: pytest.FixtureRequest, directory: Path) -> Database:
    if backend == "sqlite":
        return Database("sqlite", f"sqlite:///{directory / 'evidence.db'}")
    server: PostgresServer = request.getfixturevalue("period_postgres")
    return Database("postgresql", server.url(server.create_database()))
