"""Fixtures shared by every suite: one throwaway PostgreSQL server per test session (started
only when a test asks for it), an empty evidence database per test on each backend, and a
loopback docker-registry per test module that asks for one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from databases import Database
from images.registry_server import REGISTRY_BINARY, Registry, running_registry
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


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, which it may take down and bring up
    again (an outage)."""
    if find_bin() is None:
        pytest.skip("PostgreSQL server binaries missing: run scripts/postgres.sh")
    server = start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        path = tmp_path / "evidence.db"
        return Database("sqlite", f"sqlite:///{path}", path=path)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    return Database("postgresql", server.url(name), server=server, name=name)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """An anonymous registry; a module that needs authentication defines its own."""
    if not Path(REGISTRY_BINARY).exists():
        pytest.skip("docker-registry is not installed (scripts/registry.sh)")
    with running_registry(tmp_path_factory.mktemp("registry")) as server:
        yield server
