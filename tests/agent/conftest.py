"""The agent's store tests use the store suite's real PostgreSQL server."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))

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
