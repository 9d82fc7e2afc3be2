"""Real package data from this machine: its dpkg status (as dpkg-query reports it) and the
dist-info of a package installed in the test environment."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
from pathlib import Path

import pytest

DPKG_STATUS = Path("/var/lib/dpkg/status")


@pytest.fixture(scope="session")
def dpkg_status() -> bytes:
    if not DPKG_STATUS.is_file():
        pytest.skip("this machine has no dpkg status database")
    return DPKG_STATUS.read_bytes()


@pytest.fixture(scope="session")
def dpkg_installed() -> set[tuple[str, str, str, str]]:
    """(name, version, source, source version) of every installed package, from dpkg itself."""
    if shutil.which("dpkg-query") is None:
        pytest.skip("no dpkg-query on this machine")
    output = subprocess.run(
        [
            "dpkg-query",
            "-W",
            "-f",
            "${db:Status-Abbrev}|${Package}|${Version}|${source:Package}|${source:Version}\n",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {
        tuple(line.split("|")[1:])
        for line in output.splitlines()  # type: ignore[misc]
        if line.startswith("ii")
    }


@pytest.fixture(scope="session")
def os_release() -> bytes:
    return Path("/usr/lib/os-release").read_bytes()


@pytest.fixture(scope="session")
def python_metadata() -> tuple[str, bytes]:
    """(dist-info directory name, METADATA bytes) of the installed pytest."""
    distribution = importlib.metadata.distribution("pytest")
    metadata = Path(str(distribution.locate_file(""))) / next(
        f
        for f in (distribution.files or [])
        if f.name == "METADATA" and f.parent.name.endswith(".dist-info")
    )
    return metadata.parent.name, metadata.read_bytes()
