"""What `kubeproof agent` reports beyond the evidence store: notifications of its
transitions (`--notify-*`) and Prometheus metrics (`--metrics-port`)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from kubeproof.cli.errors import UsageError
from kubeproof.cli.notify_options import add_notify_arguments, notifier_from
from kubeproof.notify import Notifier
from kubeproof.serving import Server, log_line, start_in_thread


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (0: any free port)",
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address of the metrics endpoint (default 127.0.0.1)",
    )
    add_notify_arguments(parser)


@dataclass
class Monitoring:
    notifier: Notifier | None
    server: Server | None

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.notifier is not None:
            self.notifier.close()


def start(arguments: argparse.Namespace, agent: Any) -> Monitoring:
    """Attach the notifier and the metrics to `agent` (kubeproof.agent.loop.Agent)."""
    from kubeproof.agent.metrics import AgentMetrics, MetricsServer
    from kubeproof.notify.message import from_transition

    notifier = notifier_from(arguments, log_line)
    if notifier is not None:
        agent.transition_listeners.append(
            lambda row, result: notifier.submit(from_transition(row, result))
        )
    server = None
    if arguments.metrics_port is not None:
        if not 0 <= arguments.metrics_port <= 65535:
            raise UsageError(f"--metrics-port {arguments.metrics_port}: not a port number")
        metrics = AgentMetrics(agent, extra=notifier.metrics_lines if notifier else None)
        agent.transition_listeners.append(metrics.on_transition)
        try:
            server = MetricsServer((arguments.metrics_host, arguments.metrics_port), metrics)
        except OSError as error:
            where = f"{arguments.metrics_host}:{arguments.metrics_port}"
            raise UsageError(
                f"--metrics-port: cannot listen on {where}: {error.strerror}"
            ) from None
        start_in_thread(server, "kubeproof-agent-metrics")
        log_line(
            f"kubeproof agent: metrics on http://{arguments.metrics_host}:{server.port}/metrics"
        )
    return Monitoring(notifier, server)
