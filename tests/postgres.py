"""A throwaway PostgreSQL server for the store tests: initdb in a temporary directory,
started with pg_ctl on a free loopback port, with trust authentication, stopped and
deleted at the end of the session. The binaries come from Debian's `postgresql` package
(scripts/postgres.sh installs it); as root, the server runs as the `postgres` user."""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

USER = "kubeproof"


def find_bin() -> Path | None:
    """The directory holding initdb and pg_ctl: on PATH, else Debian's newest version."""
    initdb = shutil.which("initdb")
    if initdb and (Path(initdb).resolve().parent / "pg_ctl").exists():
        return Path(initdb).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for directory in versions:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path
    port: int
    run_as: str | None
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def command(self, *arguments: str) -> list[str]:
        base = [str(self.bin_dir / arguments[0]), *arguments[1:]]
        return ["runuser", "-u", self.run_as, "--", *base] if self.run_as else base

    def run(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*arguments), check=True, capture_output=True, text=True, cwd=self.root
        )

    def url(self, database: str, password: str | None = None) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        name = f"kp_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return name

    def dump(self, database: str) -> str:
        """Everything in the database, as pg_dump writes it (data included)."""
        return self.run(
            "pg_dump", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, database
        ).stdout

    def _dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={USER} dbname={database}"

    def take_down(self) -> None:
        """Stop the server but keep its data: the store goes down, as in an outage."""
        self.run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")

    def bring_up(self) -> None:
        """Start the server (again, after take_down: on the same port, with the same data)."""
        self.run(
            "pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "server.log"),
            "-w", "-t", "60", "-o", _options(self.port, self.root), "start",
        )  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def _options(port: int, root: Path) -> str:
    return (
        f"-p {port} -c listen_addresses=127.0.0.1 -k {root} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )


def start() -> PostgresServer:
    bin_dir = find_bin()
    if bin_dir is None:
        raise FileNotFoundError("no PostgreSQL server binaries: run scripts/postgres.sh")
    # PostgreSQL refuses to run as root: hand the directory to the postgres user.
    run_as = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="kubeproof-pg-"))
    if run_as:
        account = pwd.getpwnam(run_as)
        os.chown(root, account.pw_uid, account.pw_gid)
    for attempt in range(5):
        server = PostgresServer(bin_dir, root, free_port(), run_as)
        data = root / "data"
        if not data.exists():
            server.run(
                "initdb", "-D", str(data), "-U", USER, "-A", "trust", "-E", "UTF8",
                "--no-locale", "--no-sync",
            )  # fmt: skip
        try:
            server.bring_up()
            return server
        except subprocess.CalledProcessError:
            if attempt == 4:  # the port was taken between choosing and binding it, 5 times
                log = (root / "server.log").read_text(errors="replace")[-2000:]
                shutil.rmtree(root, ignore_errors=True)
                raise RuntimeError(f"PostgreSQL did not start:\n{log}") from None
    raise AssertionError("unreachable")
