"""`kubeproof agent` against a real control plane, recording into SQLite: a Deployment
made privileged is recorded as newly failing within about 2 s of the patch, patched back
as resolved, and deleted as closed; watches that the server ends every few seconds are
reopened without losing a change, which a one-shot full scan afterwards confirms."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from controlplane import ControlPlane, wait_for

from kubeproof.cli.main import main

pytestmark = pytest.mark.integration
SRC = Path(__file__).resolve().parents[2] / "src"
# The requirement is 2 s from the patch to the row; the slack is for this shared 2-core box.
LATENCY_BUDGET_S = 2.0
LATENCY_SLACK_S = 1.0
SECRET_VALUE = "Zx9-not-for-logs-4417"


def _deployment(namespace: str) -> dict[str, Any]:
    app = {"app": "web"}
    container = {"name": "web", "image": "nginx:1.27", "securityContext": {"privileged": False}}
    return {
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": app},
            "template": {"metadata": {"labels": app}, "spec": {"containers": [container]}},
        },
    }


def _privileged(value: bool) -> dict[str, Any]:
    container = {"name": "web", "securityContext": {"privileged": value}}
    return {"spec": {"template": {"spec": {"containers": [container]}}}}


def _rows(database: Path, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database, timeout=30) as connection:
        return connection.execute(sql, parameters).fetchall()


def _transitions(database: Path, namespace: str, check: str) -> list[tuple[Any, ...]]:
    return _rows(
        database,
        "SELECT transition, kind, name, status_before, status_after, cause, diff "
        "FROM agent_transitions WHERE namespace = ? AND check_id = ? ORDER BY id",
        namespace,
        check,
    )


def _finding_state(database: Path, namespace: str, check: str) -> str | None:
    found = _rows(
        database,
        "SELECT state FROM findings WHERE namespace = ? AND check_id = ? AND kind = ?",
        namespace,
        check,
        "Deployment",
    )
    return found[0][0] if found else None


@contextlib.contextmanager
def _running_agent(
    control_plane: ControlPlane, tmp_path: Path, watch_timeout: str
) -> Iterator[tuple[Path, Path, subprocess.Popen[bytes]]]:
    database = tmp_path / "evidence.db"
    log = tmp_path / "agent.log"
    command = [
        sys.executable, "-m", "kubeproof", "agent", "--db", str(database),
        "--kubeconfig", str(control_plane.scanner_kubeconfig),
        "--heartbeat-interval", "1s", "--settle-interval", "1s", "--watch-timeout", watch_timeout,
    ]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(SRC)}
    with log.open("w") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=environment
        )
    try:
        wait_for(lambda: "recorded scan #1" in log.read_text() or None, "the first scan", 60)
        yield database, log, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def agent(
    control_plane: ControlPlane, tmp_path: Path
) -> Iterator[tuple[Path, Path, subprocess.Popen[bytes]]]:
    """An agent whose watches the server ends every 3 s (each is reopened)."""
    with _running_agent(control_plane, tmp_path, "3s") as running:
        yield running


def test_agent_records_drift_as_it_happens(
    control_plane: ControlPlane,
    agent: tuple[Path, Path, subprocess.Popen[bytes]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    database, log, process = agent
    namespace = f"kp-agent-{uuid.uuid4().hex[:8]}"
    control_plane.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    deployments = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    control_plane.create(deployments, _deployment(namespace))
    # Compliant on pss.privileged: judged, nothing recorded for it.
    wait_for(
        lambda: _rows(database, "SELECT 1 FROM scans WHERE id > 1") or None, "a settled scan", 30
    )
    # Secrets are watched as metadata only: the value never reaches the agent or the store.
    control_plane.create(
        f"/api/v1/namespaces/{namespace}/secrets",
        {"metadata": {"name": "db-login"}, "stringData": {"password": SECRET_VALUE}},
    )
    time.sleep(4)  # longer than --watch-timeout: every watch has been ended and reopened
    assert _transitions(database, namespace, "pss.privileged") == []

    def patch(value: bool) -> datetime:
        sent = datetime.now(UTC)
        response = control_plane.request(
            "PATCH",
            f"{deployments}/web",
            _privileged(value),
            content_type="application/strategic-merge-patch+json",
        )
        assert response.status == 200, response.body[:300]
        return sent

    patched = patch(True)
    wait_for(lambda: _transitions(database, namespace, "pss.privileged") or None, "failing", 15)
    [(recorded_at,)] = _rows(
        database,
        "SELECT recorded_at FROM agent_transitions WHERE namespace = ? AND check_id = ?",
        namespace,
        "pss.privileged",
    )
    # From sending the patch to the transition's commit, by the row's own timestamp.
    latency = (datetime.fromisoformat(recorded_at).replace(tzinfo=UTC) - patched).total_seconds()
    print(f"change-to-recorded latency: {latency:.3f} s", file=sys.__stderr__)
    [failing] = _transitions(database, namespace, "pss.privileged")
    assert failing[:5] == ("failing", "Deployment", "web", "pass", "fail"), failing
    assert failing[5] == f"Deployment/{namespace}/web"
    assert "privileged" in failing[6] and "true" in failing[6], failing[6]
    assert latency <= LATENCY_BUDGET_S + LATENCY_SLACK_S, f"{latency:.2f} s"
    wait_for(lambda: _finding_state(database, namespace, "pss.privileged") == "open", "opened")

    patch(False)
    wait_for(
        lambda: len(_transitions(database, namespace, "pss.privileged")) == 2 or None,
        "resolved",
        15,
    )
    assert _transitions(database, namespace, "pss.privileged")[1][:5] == (
        "resolved", "Deployment", "web", "fail", "pass",
    )  # fmt: skip
    wait_for(lambda: _finding_state(database, namespace, "pss.privileged") == "resolved", "shut")

    patch(True)
    wait_for(lambda: _finding_state(database, namespace, "pss.privileged") == "open", "reopened")
    response = control_plane.request("DELETE", f"{deployments}/web")
    assert response.status == 200, response.body[:300]
    wait_for(lambda: _finding_state(database, namespace, "pss.privileged") == "deleted", "gone")
    kinds = [t[:3] for t in _transitions(database, namespace, "pss.privileged")]
    assert kinds == [
        ("failing", "Deployment", "web"),
        ("resolved", "Deployment", "web"),
        ("failing", "Deployment", "web"),
        ("deleted", "Deployment", "web"),
    ], kinds

    # Nothing was lost across the reconnects: a one-shot scan of the same cluster, recorded
    # in the same store, finds nothing to open, resolve or close.
    workloads = f"/apis/apps/v1/namespaces/{namespace}/replicasets"
    wait_for(lambda: not control_plane.get(workloads).json()["items"], "ReplicaSets gone", 60)
    time.sleep(3)
    scanned = main(["scan", "--cluster", "--kubeconfig", str(control_plane.scanner_kubeconfig),
                    "--fail-on", "none", "-o", "json", "--db", str(database)])  # fmt: skip
    err = capsys.readouterr().err
    assert scanned == 0, err
    assert "findings 0 opened, 0 reopened, 0 resolved, 0 closed" in err, err

    beats = _rows(database, "SELECT state, counters FROM agent_heartbeats ORDER BY id")
    assert beats[0][0] == "started" and len(beats) >= 3
    assert '"reconnects"' in beats[-1][1], beats[-1]

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, log.read_text()[-3000:]
    [(state, counters)] = _rows(
        database, "SELECT state, counters FROM agent_heartbeats ORDER BY id DESC LIMIT 1"
    )
    assert state == "stopped"
    assert json.loads(counters).get("stream_errors", 0) == 0, counters  # Secrets' watch too
    stored = b"".join(p.read_bytes() for p in database.parent.glob(f"{database.name}*"))
    assert SECRET_VALUE.encode() not in stored + log.read_bytes()


def _ended(pid: int) -> bool:
    """Gone, or a zombie nobody has reaped yet (its sockets are closed either way)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def _restart_apiserver(control_plane: ControlPlane) -> None:
    """Stop kube-apiserver and start it again with the same command line, as up.sh did
    (its pid file is updated, so the control plane still stops cleanly)."""
    pid_file = control_plane.directory / "kube-apiserver.pid"
    pid = int(pid_file.read_text())
    command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    assert str(control_plane.directory).encode() in b" ".join(command)  # the one we started
    os.kill(pid, signal.SIGTERM)
    try:
        wait_for(lambda: _ended(pid) or None, "kube-apiserver to stop", 10)
    except AssertionError:  # still draining long-running requests (watches): as down.sh does
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: _ended(pid) or None, "kube-apiserver to be killed", 10)
    with (control_plane.directory / "kube-apiserver.log").open("ab") as log:
        restarted = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    pid_file.write_text(f"{restarted.pid}\n")

    def ready() -> bool:
        try:
            return control_plane.get("/readyz").status == 200
        except OSError:  # not listening yet
            return False

    wait_for(ready, "kube-apiserver to serve again", 90)


@pytest.fixture
def restartable_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane of this test's own: restarting the session's kube-apiserver would
    leave the other tests of this worker racing its controllers' reconnection."""
    with ControlPlane(tmp_path_factory.mktemp("restartable")) as running:
        yield running


def test_agent_reconnects_after_the_api_server_restarts(
    restartable_control_plane: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    control_plane = restartable_control_plane
    with _running_agent(control_plane, tmp_path, "5m") as (database, log, process):
        namespace = f"kp-agent-{uuid.uuid4().hex[:8]}"
        control_plane.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
        deployments = f"/apis/apps/v1/namespaces/{namespace}/deployments"
        control_plane.create(deployments, _deployment(namespace))
        wait_for(lambda: _rows(database, "SELECT 1 FROM scans WHERE id > 1") or None, "a scan")

        _restart_apiserver(control_plane)
        # Changed as soon as the server is back, before the agent's watches have resumed:
        # the resumed watch (or the relist, if its version is gone) must still deliver it.
        response = control_plane.request(
            "PATCH",
            f"{deployments}/web",
            _privileged(True),
            content_type="application/strategic-merge-patch+json",
        )
        assert response.status == 200, response.body[:300]
        wait_for(
            lambda: _transitions(database, namespace, "pss.privileged") or None,
            "the change after the restart",
            60,
        )
        assert _transitions(database, namespace, "pss.privileged")[0][:3] == (
            "failing", "Deployment", "web",
        )  # fmt: skip
        wait_for(lambda: _finding_state(database, namespace, "pss.privileged") == "open", "open")
        beats = _rows(database, "SELECT counters FROM agent_heartbeats ORDER BY id DESC LIMIT 1")
        assert '"stream_errors"' in beats[0][0] or '"reconnects"' in beats[0][0], beats

        control_plane.request("DELETE", f"{deployments}/web")
        replica_sets = f"/apis/apps/v1/namespaces/{namespace}/replicasets"
        wait_for(lambda: not control_plane.get(replica_sets).json()["items"], "cleanup", 60)
        wait_for(lambda: _finding_state(database, namespace, "pss.privileged") == "deleted", "shut")
        time.sleep(3)
        scanned = main(["scan", "--cluster", "--kubeconfig", str(control_plane.scanner_kubeconfig),
                        "--fail-on", "none", "-o", "json", "--db", str(database)])  # fmt: skip
        err = capsys.readouterr().err
        assert scanned == 0, err
        assert "findings 0 opened, 0 reopened, 0 resolved, 0 closed" in err, err
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0, log.read_text()[-3000:]


@pytest.fixture(scope="module")
def postgres() -> Iterator[Any]:
    from postgres import find_bin, start  # its own server: the test stops and starts it

    if find_bin() is None:
        message = "PostgreSQL server binaries missing: run scripts/postgres.sh (make test-tools)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = start()
    yield server
    server.stop()


def _pg(server: Any, database: str, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
    import psycopg

    dsn = f"host=127.0.0.1 port={server.port} user=kubeproof dbname={database}"
    try:
        with psycopg.connect(dsn, connect_timeout=5) as connection:
            return connection.execute(sql, parameters).fetchall()
    except psycopg.OperationalError:
        return []


def _pg_ctl(server: Any, action: str) -> None:
    data = str(server.root / "data")
    if action == "stop":
        server.run("pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
        return
    options = f"-p {server.port} -c listen_addresses=127.0.0.1 -k {server.root}"
    log = str(server.root / "server.log")
    server.run("pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o", options, "start")


def test_a_change_while_the_database_is_down_is_recorded_when_it_is_back(
    control_plane: ControlPlane, postgres: Any, tmp_path: Path
) -> None:
    name = postgres.create_database()
    url = postgres.url(name)
    log = tmp_path / "agent.log"
    command = [
        sys.executable, "-m", "kubeproof", "agent", "--db", url,
        "--kubeconfig", str(control_plane.scanner_kubeconfig),
        "--heartbeat-interval", "1s", "--settle-interval", "1s",
    ]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(SRC)}
    with log.open("w") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=environment
        )
    namespace = f"kp-agent-{uuid.uuid4().hex[:8]}"
    deployments = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    query = "SELECT transition FROM agent_transitions WHERE namespace = %s AND check_id = %s"
    try:
        wait_for(lambda: "recorded scan #1" in log.read_text() or None, "the first scan", 60)
        control_plane.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
        control_plane.create(deployments, _deployment(namespace))
        wait_for(lambda: _pg(postgres, name, "SELECT 1 FROM scans WHERE id > 1") or None, "scan")

        _pg_ctl(postgres, "stop")
        try:
            response = control_plane.request(
                "PATCH",
                f"{deployments}/web",
                _privileged(True),
                content_type="application/strategic-merge-patch+json",
            )
            assert response.status == 200, response.body[:300]
            wait_for(lambda: "failing: pss.privileged" in log.read_text() or None, "judged", 30)
            wait_for(lambda: "will retry" in log.read_text() or None, "a reported failure", 30)
            assert process.poll() is None, log.read_text()[-3000:]
        finally:
            _pg_ctl(postgres, "start")

        recorded = wait_for(
            lambda: _pg(postgres, name, query, namespace, "pss.privileged") or None,
            "the transition, once the database is back",
            60,
        )
        assert recorded == [("failing",)]
        state = "SELECT state FROM findings WHERE namespace = %s AND check_id = %s"
        wait_for(
            lambda: _pg(postgres, name, state, namespace, "pss.privileged") == [("open",)] or None,
            "the finding, from a scan recorded once the database is back",
            60,
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
