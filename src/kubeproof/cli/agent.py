"""`kubeproof agent`: keep the evidence store current while the cluster changes."""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from kubeproof import frameworks
from kubeproof.cli import agent_monitoring, database
from kubeproof.cli.errors import UsageError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration(text: str) -> float:
    """Seconds from `90`, `90s`, `5m`, `1h`, `500ms`."""
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 30s, 5m, 1h)")
    seconds = float(match.group(1)) * _UNIT_S[match.group(2) or "s"]
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than zero: {text!r}")
    return seconds


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "agent",
        help="watch a cluster and record configuration drift as it happens",
        description="List every kind the checks read, record that as a scan, then watch: "
        "each change re-judges what it affects and records newly failing, resolved, changed "
        "and deleted verdicts in the evidence store, with heartbeats and periodic full "
        "rescans. Runs until SIGTERM or SIGINT. See docs/agent.md.",
    )
    database.add_db_argument(parser)
    database.add_signing_key_argument(parser)
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="kubeconfig (default $KUBECONFIG, ~/.kube/config, in-cluster)",
    )
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context")
    parser.add_argument("--as", dest="as_user", metavar="USER", help="impersonate USER")
    parser.add_argument(
        "--cluster-name",
        metavar="NAME",
        help="the name the evidence store files this cluster under (default: the "
        "kubeconfig's cluster)",
    )
    parser.add_argument(
        "-f",
        "--framework",
        default=frameworks.DEFAULT_FRAMEWORK,
        help="soc2 (default), pss-baseline, pss-restricted, cis",
    )
    parser.add_argument(
        "--full-rescan-interval",
        type=duration,
        default=3600.0,
        metavar="DURATION",
        help="relist everything and record a scan this often (default 1h)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=duration,
        default=60.0,
        metavar="DURATION",
        help="record a heartbeat this often (default 60s)",
    )
    parser.add_argument(
        "--settle-interval",
        type=duration,
        default=5.0,
        metavar="DURATION",
        help="after a change, record a scan from the cache this much later, so findings "
        "open, resolve and close (default 5s)",
    )
    parser.add_argument(
        "--watch-timeout",
        type=duration,
        default=300.0,
        metavar="DURATION",
        help="ask the API server to end each watch after this; it is reopened from where "
        "it left off (default 5m)",
    )
    parser.add_argument(
        "--audit-log",
        type=Path,
        metavar="FILE",
        help="the API server's audit log (followed across rotation): each transition "
        "records who made the change (user, verb, time, source IP)",
    )
    parser.add_argument(
        "--audit-wait",
        type=duration,
        default=1.0,
        metavar="DURATION",
        help="with --audit-log: how long a transition waits for its audit event before it "
        "is recorded without one (default 1s)",
    )
    agent_monitoring.add_arguments(parser)
    parser.set_defaults(run=run)


def run(arguments: argparse.Namespace) -> int:
    from kubeproof.agent.loop import Agent, AgentOptions
    from kubeproof.sources.cluster import ClusterError
    from kubeproof.sources.kubeconfig import KubeconfigError, load_connection
    from kubeproof.store import StoreError
    from kubeproof.store.db import open_store

    try:
        framework = frameworks.load(arguments.framework)
    except frameworks.UnknownFramework as error:
        raise UsageError(str(error.args[0])) from None
    try:
        connection = load_connection(arguments.kubeconfig, arguments.context)
        connection = connection.with_impersonation(arguments.as_user)
    except KubeconfigError as error:
        raise UsageError(str(error)) from None
    cluster = arguments.cluster_name or connection.cluster_name
    if not cluster.strip():
        raise UsageError("--cluster-name must not be empty")
    if arguments.audit_log is not None and not arguments.audit_log.is_file():
        raise UsageError(f"--audit-log {arguments.audit_log}: not a readable file")
    try:
        store = open_store(arguments.db, signing_key=arguments.signing_key)
    except StoreError as error:
        raise UsageError(str(error)) from None
    options = AgentOptions(
        full_rescan_interval_s=arguments.full_rescan_interval,
        heartbeat_interval_s=arguments.heartbeat_interval,
        settle_s=arguments.settle_interval,
        watch_timeout_s=max(int(arguments.watch_timeout), 1),
        audit_log=arguments.audit_log,
        audit_wait_s=arguments.audit_wait,
    )
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        print(f"kubeproof agent: {signal.Signals(signum).name}: stopping", file=sys.stderr)
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    agent = Agent(connection, store, framework, cluster, options)
    monitoring = agent_monitoring.start(arguments, agent)
    try:
        return agent.run(stop)
    except ClusterError as error:
        raise UsageError(str(error)) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        monitoring.close()
        store.close()
