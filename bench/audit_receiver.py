"""Throughput of `kubeproof audit serve`: the audit webhook backend's EventList batches
posted over HTTPS (one keep-alive connection, like one API server) to the receiver, which
runs every detector. The receiver runs as its own process (`kubeproof audit serve`), so
client and server do not share an interpreter.

    python bench/audit_receiver.py [--events N] [--batch 400] [--seed S] [--db URL]

Events come from bench/audit_pipeline.py's generator (a busy cluster's traffic). Prints
events per second from the first POST to the last answer, and the receiver's own counts.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shlex
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audit_pipeline import Generator
from webhook_latency import make_certificate

SRC = Path(__file__).resolve().parents[1] / "src"


def batches(count: int, size: int, seed: int, span_s: float) -> list[bytes]:
    generator = Generator(seed)
    step = span_s / count
    items = [generator.one(index * step) for index in range(count)]
    return [
        json.dumps(
            {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items[i : i + size]},
            separators=(",", ":"),
        ).encode()
        for i in range(0, count, size)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=400, help="events per EventList")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--db", metavar="URL", help="record detections in this evidence store")
    arguments = parser.parse_args()
    bodies = batches(arguments.events, arguments.batch, arguments.seed, 48 * 3600)
    with tempfile.TemporaryDirectory() as directory:
        ca, cert, key = make_certificate(Path(directory))
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kubeproof",
                "audit",
                "serve",
                "--tls-cert",
                str(cert),
                "--tls-key",
                str(key),
                "--port",
                "0",
                "--learning-period",
                "24h",
                *(["--db", arguments.db] if arguments.db else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(SRC)},
        )
        try:
            assert server.stderr is not None
            port = int(server.stderr.readline().split("127.0.0.1:")[1].split()[0])
            context = ssl.create_default_context(cafile=str(ca))
            connection = http.client.HTTPSConnection("127.0.0.1", port, context=context)
            began = time.perf_counter()
            for body in bodies:
                connection.request("POST", "/audit", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                assert response.status == 200, response.status
            elapsed = time.perf_counter() - began
            connection.request("GET", "/metrics")
            metrics = connection.getresponse().read().decode()
        finally:
            server.terminate()
            server.wait(30)
    received = [line for line in metrics.splitlines() if "kubeproof_audit_events_total{" in line]
    print(f"command: python {shlex.join(['bench/audit_receiver.py', *sys.argv[1:]])}")
    print(f"load average: {os.getloadavg()[0]:.2f}")
    print(
        f"{arguments.events} events in {len(bodies)} EventLists of {arguments.batch} over HTTPS: "
        f"{arguments.events / elapsed:,.0f} events/s ({elapsed:.2f} s, "
        f"{elapsed / len(bodies) * 1000:.1f} ms per batch)"
    )
    print("receiver: " + ", ".join(line.split("{", 1)[1] for line in received))
    return 0


if __name__ == "__main__":
    sys.exit(main())
