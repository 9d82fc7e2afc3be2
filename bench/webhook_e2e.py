#!/usr/bin/env python3
"""End-to-end pod creation through a real kube-apiserver, with and without the webhook.

    python bench/webhook_e2e.py                    # 300 pods each way, one at a time
    python bench/webhook_e2e.py --pods 500 --record

Starts the test control plane (tests/integration/controlplane.py: etcd, kube-apiserver,
kube-controller-manager), runs `kubeproof webhook serve` as its own process on loopback
(bench/webhook_latency.py's policy: pss-restricted and an allowed registry; with
`--record`, every decision recorded in a new SQLite store), and registers it for one
namespace only. It then creates compliant pods, alternating between that namespace and one
the webhook never sees, and times each `POST /api/v1/namespaces/NS/pods` from the client
(keep-alive HTTPS, admin credentials). The ratio of the two medians (and tails) is the
cost the webhook adds to a pod's creation as a client sees it, admission round trip
included. Pods stay Pending: there is no kubelet.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shlex
import ssl
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests" / "integration"), str(ROOT / "tests")]

from controlplane import ControlPlane, wait_for  # noqa: E402
from webhook_helpers import LABEL, WEBHOOKS, configuration  # noqa: E402
from webhook_latency import (  # noqa: E402
    DEFAULT_IMAGE,
    container,
    percentile,
    recorded_decisions,
    start_server,
)


class Client:
    """One keep-alive HTTPS connection to the API server as the admin."""

    def __init__(self, cluster: ControlPlane) -> None:
        address = urlsplit(cluster.server)
        self._context: ssl.SSLContext = cluster._context("admin")
        self._host, self._port = address.hostname or "127.0.0.1", address.port or 443
        self._connection = self._connect()

    def _connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            self._host, self._port, context=self._context, timeout=30
        )

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, float]:
        """HTTP status and seconds from send to the whole answer read."""
        payload = json.dumps(body).encode()
        started = time.perf_counter()
        self._connection.request(
            "POST", path, body=payload, headers={"Content-Type": "application/json"}
        )
        response = self._connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - started


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container(False, DEFAULT_IMAGE)]},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=300, help="pods created each way")
    parser.add_argument("--record", action="store_true", help="the webhook records decisions")
    arguments = parser.parse_args()
    if not 10 <= arguments.pods <= 5000:
        parser.error("--pods must be in [10, 5000]")
    run = uuid.uuid4().hex[:6]
    judged, unjudged = f"bench-e2e-judged-{run}", f"bench-e2e-plain-{run}"
    with tempfile.TemporaryDirectory() as directory, ControlPlane(Path(directory) / "cp") as cp:
        work = Path(directory) / "webhook"
        work.mkdir()
        db = f"sqlite:///{work / 'evidence.db'}" if arguments.record else None
        process, port, ca = start_server(work, "", db)
        try:
            url = f"https://127.0.0.1:{port}/validate"
            cp.create(WEBHOOKS, configuration(f"bench-{run}", url, ca.read_bytes(), run, "Fail"))
            for name, labels in ((judged, {LABEL: run}), (unjudged, {})):
                cp.create("/api/v1/namespaces", {"metadata": {"name": name, "labels": labels}})
            for name in (judged, unjudged):
                wait_for(
                    lambda name=name: (
                        cp.get(f"/api/v1/namespaces/{name}/serviceaccounts/default").status == 200
                    ),
                    f"the default service account in {name}",
                )
            client = Client(cp)
            # The API server loads webhook configurations asynchronously: wait for a denial.
            bad = {**pod("probe"), "spec": {"containers": [container(True, DEFAULT_IMAGE)]}}
            wait_for(
                lambda: client.post(f"/api/v1/namespaces/{judged}/pods?dryRun=All", bad)[0] == 403,
                "the API server to call the webhook",
            )
            for namespace in (judged, unjudged):  # warm both paths
                client.post(f"/api/v1/namespaces/{namespace}/pods", pod("warm"))
            times: dict[str, list[float]] = {judged: [], unjudged: []}
            load_before = os.getloadavg()[0]
            for index in range(arguments.pods):
                for namespace in (judged, unjudged) if index % 2 else (unjudged, judged):
                    status, seconds = client.post(
                        f"/api/v1/namespaces/{namespace}/pods", pod(f"p-{index}")
                    )
                    if status != 201:
                        raise SystemExit(f"creating a pod in {namespace}: HTTP {status}")
                    times[namespace].append(seconds * 1000)
            load_after = os.getloadavg()[0]
        finally:
            process.terminate()
            process.wait(60)  # with a store: the buffer is flushed before exiting
        recorded = recorded_decisions(db) if db is not None else None
    print(f"$ python bench/webhook_e2e.py {shlex.join(sys.argv[1:])}".rstrip())
    print(
        f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}  pods each way: "
        f"{arguments.pods}  webhook: pss-restricted + allowed registry"
        + (", recording decisions (SQLite)" if arguments.record else "")
    )
    print(f"{'pod creation (ms)':<26}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}")
    rows = {}
    for label, namespace in (("without the webhook", unjudged), ("with the webhook", judged)):
        values = times[namespace]
        rows[label] = [percentile(values, q) for q in (0.5, 0.95, 0.99)] + [max(values)]
        print(f"{label:<26}" + "".join(f"{v:>9.2f}" for v in rows[label]))
    ratios = [
        w / max(o, 1e-9)
        for w, o in zip(rows["with the webhook"], rows["without the webhook"], strict=True)
    ]
    print(f"{'ratio with / without':<26}" + "".join(f"{r:>9.2f}" for r in ratios))
    if recorded is not None:
        print(f"recorded: {recorded[0]} decisions in {recorded[1]} ledger entries")
    print(f"load average (1 min) before/after: {load_before:.2f} / {load_after:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
