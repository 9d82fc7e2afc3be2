"""The period-report suite builds its histories on SQLite and on the session's real
PostgreSQL server (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from databases import Database
from postgres import PostgresServer


def new_database(backend: str, request: pytest.FixtureRequest, directory: Path) -> Database:
    if backend == "sqlite":
        return Database("sqlite", f"sqlite:///{directory / 'evidence.db'}")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return Database("postgresql", server.url(server.create_database()))
