#!/usr/bin/env python3
"""`kubeproof agent` against a loaded test control plane: change-to-recorded latency and
the agent's peak memory.

    python bench/agent_latency.py                        # about 5,000 watched objects
    python bench/agent_latency.py --namespaces 50 --deployments 1830   # about 10,000
    python bench/agent_latency.py --changes 40 --keep

Starts its own control plane (scripts/controlplane/build.sh, up.sh; down.sh at exit),
loads it with the objects of bench/cluster_objects.py (through bench/cluster_scan.py's
loader, which waits for the ReplicaSets and Pods), then runs `kubeproof agent` recording
into SQLite. Once the agent has recorded its first scan, it patches one Deployment of its
own namespace `--changes` times, alternately privileged and not, one patch every
`--interval` seconds, and measures for each the time from sending the PATCH to the
`recorded_at` of the `pss.privileged` transition it causes (committed rows only). The
rollouts the patches start (new ReplicaSets and Pods) and the scans the agent records
from its cache after changes settle are part of the load, as in a real cluster. Peak
memory is the agent process's VmHWM from /proc after the changes. Targets: p95 ≤ 2 s,
peak ≤ 400 MB at 10,000 objects.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from cluster_scan import Api, BenchError, load, read_env, run_script

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
TARGET_P95_S = 2.0
TARGET_PEAK_MB = 400.0
NAMESPACE = "kp-agent-bench"


def _deployment(privileged: bool) -> dict[str, object]:
    labels = {"app": "probe"}
    container = {
        "name": "probe",
        "image": "registry.example/probe@sha256:" + "1" * 64,
        "securityContext": {"privileged": privileged},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "probe", "namespace": NAMESPACE},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


def patch_privileged(api: Api, privileged: bool) -> datetime:
    """A merge patch of the probe's container (a JSON body the API's PUT would replace)."""
    path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/probe"
    spec = _deployment(privileged)["spec"]
    body = json.dumps({"spec": spec}).encode()
    api._local.connection = None  # a fresh connection: an idle one may have been closed
    connection = api._connection()
    connection.connect()  # the TLS handshake is not part of the change
    sent = datetime.now(UTC)
    connection.request(
        "PATCH",
        path,
        body=body,
        headers={"Content-Type": "application/merge-patch+json", "Accept": "application/json"},
    )
    response = connection.getresponse()
    answer = response.read()
    connection.close()
    if response.status != 200:
        raise BenchError(f"PATCH {path}: {response.status} {answer[:300]!r}")
    return sent


def transitions(database: Path) -> list[str]:
    with sqlite3.connect(database, timeout=30) as connection:
        rows = connection.execute(
            "SELECT recorded_at FROM agent_transitions WHERE namespace = ? AND check_id = ? "
            "ORDER BY id",
            (NAMESPACE, "pss.privileged"),
        ).fetchall()
    return [row[0] for row in rows]


def wait_for(probe: object, what: str, timeout_s: float) -> None:
    assert callable(probe)
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.05)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def measure(arguments: argparse.Namespace, env: dict[str, str], workdir: Path) -> None:
    api = Api(env)
    status, answer = api.request("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
    if status not in (201, 409):
        raise BenchError(f"creating namespace {NAMESPACE}: {status} {answer[:300]!r}")
    status, answer = api.request(
        "POST", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", _deployment(False)
    )
    if status not in (201, 409):
        raise BenchError(f"creating the probe Deployment: {status} {answer[:300]!r}")
    database = workdir / "agent.db"
    log = workdir / "agent.log"
    command = [
        sys.executable, "-m", "kubeproof", "agent", "--db", f"sqlite:///{database}",
        "--kubeconfig", env["ADMIN_KUBECONFIG"], "--heartbeat-interval", "10s",
        "--settle-interval", arguments.settle_interval,
    ]  # fmt: skip
    started = time.perf_counter()
    with log.open("w") as output:
        agent = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(SRC)},
        )
    try:
        wait_for(lambda: "recorded scan #1" in log.read_text(), "the first scan", 600)
        ready_s = time.perf_counter() - started
        watched = next(line for line in log.read_text().splitlines() if "watching" in line).split(
            "watching ", 1
        )[1]
        print(
            f"agent watching {watched}; first scan recorded {ready_s:.1f} s after start; "
            f"peak RSS so far {peak_rss_mb(agent.pid):.0f} MB",
            flush=True,
        )
        latencies = []
        for number in range(arguments.changes):
            seen = len(transitions(database))
            sent = patch_privileged(api, number % 2 == 0)
            wait_for(
                lambda seen=seen: len(transitions(database)) > seen,
                f"transition {number + 1}",
                60,
            )
            recorded = datetime.fromisoformat(transitions(database)[seen]).replace(tzinfo=UTC)
            latencies.append((recorded - sent).total_seconds())
            time.sleep(arguments.interval)
        peak = peak_rss_mb(agent.pid)
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=60)
        except subprocess.TimeoutExpired:
            agent.kill()
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    print(
        "\n| changes | p50 | p95 | max | mean | agent peak RSS |\n"
        "|---:|---:|---:|---:|---:|---:|\n"
        f"| {len(latencies)} | {p50:.3f} s | {p95:.3f} s | {max(latencies):.3f} s "
        f"| {statistics.mean(latencies):.3f} s | {peak:.0f} MB |"
    )
    print(
        f"\nlatency p95 ≤ {TARGET_P95_S:g} s: {'met' if p95 <= TARGET_P95_S else 'MISSED'}; "
        f"peak RSS ≤ {TARGET_PEAK_MB:.0f} MB: {'met' if peak <= TARGET_PEAK_MB else 'MISSED'}"
    )
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("command:  " + shlex.join([Path(sys.executable).name, *sys.argv]))
    print("agent:    " + shlex.join(command[1:]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespaces", type=int, default=25)
    parser.add_argument("--deployments", type=int, default=920)
    parser.add_argument("--changes", type=int, default=30, help="patches to time")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between patches")
    parser.add_argument(
        "--settle-interval",
        default="5s",
        help="the agent's --settle-interval (default 5s, the agent's own default)",
    )
    parser.add_argument("--workers", type=int, default=8, help="concurrent creates")
    parser.add_argument("--settle-timeout", type=float, default=1800)
    parser.add_argument("--keep", action="store_true", help="leave the control plane up")
    arguments = parser.parse_args()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    workdir = Path(tempfile.mkdtemp(prefix="kubeproof-agent-bench-"))
    cluster_dir = workdir / "cluster"
    run_script("build.sh", timeout_s=45 * 60)
    try:
        print(run_script("up.sh", str(cluster_dir), timeout_s=120).splitlines()[0])
        env = read_env(cluster_dir)
        load_s = load(
            Api(env),
            arguments.namespaces,
            arguments.deployments,
            arguments.workers,
            arguments.settle_timeout,
            cluster_dir / "kube-controller-manager.log",
        )
        print(f"loaded in {load_s:.1f} s")
        measure(arguments, env, workdir)
    except BenchError as error:
        print(f"agent_latency: {error}", file=sys.stderr)
        return 1
    finally:
        if not arguments.keep:
            run_script("down.sh", str(cluster_dir), timeout_s=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
