"""`kubeproof audit scan FILE...` and `kubeproof audit follow FILE`: anomaly detection
over Kubernetes audit logs (SOC 2 CC7.2). Exit codes: scan 0 no detection, 1 detections,
2 usage or input errors; follow runs until interrupted (0 on SIGINT or SIGTERM)."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from kubeproof.audit.baseline import (
    DEFAULT_LEARNING_PERIOD_S,
    MAX_LEARNING_PERIOD_S,
    Baseline,
    BaselineError,
    load_baseline,
    save_baseline,
)
from kubeproof.audit.events import DEFAULT_MAX_LINE_BYTES, ParseStats, events_from_lines
from kubeproof.audit.pipeline import Detection, Pipeline
from kubeproof.audit.source import AuditInputError, LogFollower, events_in_file, oldest_first
from kubeproof.cli import database
from kubeproof.cli.errors import EXIT_CLEAN, EXIT_FAILURES, UsageError
from kubeproof.cli.notify_options import add_notify_arguments, notifier_from
from kubeproof.cli.server_options import add_server_arguments
from kubeproof.model import Result
from kubeproof.redaction import redact
from kubeproof.sources.kubeconfig import IN_CLUSTER_NAME
from kubeproof.store import ENVIRONMENT_VARIABLE

if TYPE_CHECKING:
    from kubeproof.audit.evidence import DetectionRecorder
    from kubeproof.store.db import Store

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_PROBLEMS_SHOWN = 20


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "audit",
        help="detect anomalies in Kubernetes audit logs (SOC 2 CC7.2)",
        description="Anomaly detection over Kubernetes audit logs (audit.k8s.io/v1 events). "
        "Exit codes: 0 no detection, 1 detections, 2 usage or input errors.",
    )
    actions = parser.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    scan = actions.add_parser(
        "scan",
        help="read audit log files (plain or gzip, rotated ones too) and print detections",
        description="Read audit log files, oldest first, and print what the detectors found. "
        "Without --baseline, the baseline detectors learn during the learning period that "
        "starts with the first event and judge only the events after it.",
    )
    scan.add_argument("files", nargs="+", type=Path, metavar="FILE", help="audit log files")
    _common_arguments(scan)
    scan.add_argument(
        "--learn",
        action="store_true",
        help="learn every event into the baseline (saved to --baseline) instead of comparing",
    )
    scan.add_argument(
        "-o", "--format", default="table", choices=("table", "json"), help="output format"
    )
    _store_arguments(scan, heartbeats=False)
    scan.set_defaults(run=run_scan)

    follow = actions.add_parser(
        "follow",
        help="follow a live audit log (tail -F: rotation, truncation); detections as JSON lines",
        description="Follow a live audit log and print each detection as one JSON line when it "
        "first occurs. Survives rotation and truncation. Stop with Ctrl-C or SIGTERM; the "
        "baseline (if given) is saved then.",
    )
    follow.add_argument("file", type=Path, metavar="FILE", help="the live audit log")
    _common_arguments(follow)
    follow.add_argument(
        "--from-start", action="store_true", help="read the file from its start, not its end"
    )
    follow.add_argument(
        "--poll-interval", type=float, default=0.5, metavar="S", help="seconds between polls"
    )
    _store_arguments(follow, heartbeats=True)
    follow.set_defaults(run=run_follow)

    serve = actions.add_parser(
        "serve",
        help="receive the API server's audit webhook (POST /audit) and Falco alerts "
        "(POST /falco) over HTTPS; detections as JSON lines",
        description="An HTTPS endpoint for the API server's audit webhook backend (EventList "
        "batches on /audit) and for Falco's JSON alerts (/falco), with /metrics. Each "
        "detection is printed as one JSON line, as `follow` does. Stop with Ctrl-C or SIGTERM.",
    )
    add_server_arguments(serve, port=8444)
    serve.add_argument(
        "--client-ca",
        metavar="FILE",
        help="require client certificates signed by this CA (the API server's, Falco's)",
    )
    serve.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="read pods' owners from this cluster to attach Falco alerts to workloads "
        "(without it or --context, owners are inferred from pod names)",
    )
    serve.add_argument("--context", metavar="NAME", help="kubeconfig context for owner lookups")
    _common_arguments(serve)
    add_notify_arguments(serve)
    _store_arguments(serve, heartbeats=True)
    serve.set_defaults(run=run_serve)

    config = actions.add_parser(
        "webhook-config",
        help="print the API server's --audit-webhook-config-file for `audit serve`",
    )
    config.add_argument(
        "--url", required=True, help="the receiver's URL, e.g. https://kubeproof-audit:8444/audit"
    )
    config.add_argument("--ca-file", type=Path, metavar="FILE", help="CA of the serving cert")
    config.add_argument(
        "--client-cert", type=Path, metavar="FILE", help="client certificate the API server uses"
    )
    config.add_argument("--client-key", type=Path, metavar="FILE", help="its private key (path)")
    config.set_defaults(run=run_webhook_config)


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--baseline", type=Path, metavar="FILE", help="per-subject baseline (JSON), read and saved"
    )
    parser.add_argument(
        "--learning-period",
        metavar="DURATION",
        help="how long a new baseline learns, from its first event: 30m, 12h, 7d (default 7d)",
    )
    parser.add_argument(
        "--burst", type=int, default=10, metavar="N", help="403s from one subject that make a burst"
    )
    parser.add_argument(
        "--burst-window", type=float, default=60.0, metavar="S", help="window of a burst, seconds"
    )
    parser.add_argument(
        "--max-line-bytes",
        type=int,
        default=DEFAULT_MAX_LINE_BYTES,
        metavar="N",
        help="longer lines are skipped and counted (default 4 MiB)",
    )


def _store_arguments(parser: argparse.ArgumentParser, *, heartbeats: bool) -> None:
    database.add_db_argument(parser)
    database.add_signing_key_argument(parser)
    parser.add_argument(
        "--cluster-name",
        metavar="NAME",
        default=IN_CLUSTER_NAME,
        help="with a store: the cluster its detections are filed under, as `scan --cluster` "
        f"files scans (default {IN_CLUSTER_NAME})",
    )
    if heartbeats:
        parser.add_argument(
            "--heartbeat-interval",
            type=float,
            default=60.0,
            metavar="S",
            help="with a store: record a heartbeat with the counters this often (default 60)",
        )


def _evidence_store(arguments: argparse.Namespace) -> Store | None:
    """The store detections are recorded in (--db or $KUBEPROOF_DB), opened before any
    event is read: a bad URL, an unreachable database or a bad key stop here (exit 2)."""
    if not (arguments.db or os.environ.get(ENVIRONMENT_VARIABLE)):
        return None
    if not arguments.cluster_name.strip():
        raise UsageError("--cluster-name must not be empty")
    if getattr(arguments, "heartbeat_interval", 1.0) < 1.0:
        raise UsageError("--heartbeat-interval must be at least 1 second")
    return database.open_for_writing(arguments)


def _recorder(
    store: Store | None, arguments: argparse.Namespace, counters: Any
) -> DetectionRecorder | None:
    if store is None:
        return None
    from kubeproof.audit.evidence import DetectionRecorder, new_run_id
    from kubeproof.serving import log_line

    recorder = DetectionRecorder(
        store,
        cluster=arguments.cluster_name,
        run_id=new_run_id(),
        log=log_line,
        counters=counters,
        heartbeat_interval_s=arguments.heartbeat_interval,
    )
    return recorder.start()


def _say_recording(recorder: DetectionRecorder | None) -> None:
    if recorder is not None:
        print(
            f"kubeproof: recording detections of {recorder.cluster} in {recorder.store.url} "
            f"(run {recorder.run_id})",
            file=sys.stderr,
            flush=True,
        )


def _close_recorder(recorder: DetectionRecorder | None) -> int:
    """Write what is buffered; exit 1 when detections could not be recorded."""
    if recorder is None:
        return EXIT_CLEAN
    lost = recorder.close()
    recorder.store.close()
    state = recorder.state
    if lost:
        return EXIT_FAILURES
    print(
        f"kubeproof: {state.recorded} detections recorded in {recorder.store.url} "
        f"({state.duplicates} already there) in {state.batches} ledger entries",
        file=sys.stderr,
        flush=True,
    )
    return EXIT_CLEAN


def parse_duration(text: str) -> float:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"--learning-period {text!r}: expected a number with s, m, h or d")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_LEARNING_PERIOD_S:
        longest = f"{MAX_LEARNING_PERIOD_S / 86400:.0f}d"
        raise UsageError(f"--learning-period {text!r}: at most {longest}")
    return seconds


def _pipeline(arguments: argparse.Namespace, *, learn: bool) -> Pipeline:
    if arguments.burst < 1 or arguments.burst_window <= 0:
        raise UsageError("--burst must be at least 1 and --burst-window positive")
    if arguments.max_line_bytes < 1024:
        raise UsageError("--max-line-bytes must be at least 1024")
    period = (
        parse_duration(arguments.learning_period) if arguments.learning_period is not None else None
    )
    baseline = _load(arguments.baseline, period)
    return Pipeline(
        baseline,
        learn_everything=learn,
        burst_threshold=arguments.burst,
        burst_window_s=arguments.burst_window,
    )


def _load(path: Path | None, period: float | None) -> Baseline:
    if path is None:
        return Baseline(period if period is not None else DEFAULT_LEARNING_PERIOD_S)
    try:
        return load_baseline(path, period)
    except BaselineError as error:
        raise UsageError(str(error)) from None


def _save(pipeline: Pipeline, path: Path | None) -> None:
    if path is None or pipeline.learned_events == 0:
        return
    try:
        save_baseline(pipeline.baseline, path)
    except BaselineError as error:
        raise UsageError(str(error)) from None


# --- scan -----------------------------------------------------------------------------


def run_scan(arguments: argparse.Namespace) -> int:
    if arguments.learn and arguments.baseline is None:
        raise UsageError("--learn needs --baseline FILE to save what it learned")
    pipeline = _pipeline(arguments, learn=arguments.learn)
    store = _evidence_store(arguments)
    files = oldest_first(arguments.files)
    for path in files:
        try:
            for event in events_in_file(path, pipeline.stats, arguments.max_line_bytes):
                pipeline.feed(event)
        except AuditInputError as error:
            raise UsageError(str(error)) from None
    pipeline.finish_learning()
    _save(pipeline, arguments.baseline)
    results = pipeline.results()
    if arguments.format == "json":
        _write_json(sys.stdout, files, pipeline, results)
    else:
        _write_table(sys.stdout, pipeline, results)
    if store is not None:
        _record_scan(store, arguments.cluster_name, pipeline)
    return EXIT_FAILURES if pipeline.detections() else EXIT_CLEAN


def _record_scan(store: Store, cluster: str, pipeline: Pipeline) -> None:
    from sqlalchemy import exc

    from kubeproof.audit.evidence import STORE_ERRORS, new_run_id, record_printed
    from kubeproof.store.db import describe

    printed = [result_json(d.result()) for d in pipeline.detections()]
    try:
        recorded = record_printed(store, printed, cluster=cluster, run_id=new_run_id())
    except STORE_ERRORS as error:
        reason = describe(error) if isinstance(error, exc.DBAPIError) else redact(str(error))
        raise UsageError(f"cannot record the detections in {store.url}: {reason}") from None
    finally:
        store.close()
    entries = ", ".join(f"#{seq}" for seq in recorded.entries) or "none"
    print(
        f"kubeproof: recorded {recorded.detections} detections of {cluster} in {store.url} "
        f"({recorded.duplicates} already there); ledger entries {entries}",
        file=sys.stderr,
    )


def result_json(result: Result) -> dict[str, Any]:
    """A Result as kubeproof's JSON shape, with the detection's evidence."""
    check = result.check
    data: dict[str, Any] = {
        "check": check.id,
        "title": check.title,
        "severity": check.severity.value,
        "status": result.status.value,
        "criteria": check.criteria,
        "subject": result.subject.as_dict(),
        "message": result.message,
        "fingerprint": result.fingerprint,
    }
    if result.reason is not None:
        data["reason"] = result.reason
    if "evidence" in result.extra:
        data["evidence"] = result.extra["evidence"]
        data["key"] = redact(result.extra["key"])
    return data


def _summary(pipeline: Pipeline) -> dict[str, Any]:
    summary = pipeline.stats.as_dict()
    summary["detections"] = len(pipeline.detections())
    summary["coverage"] = pipeline.coverage()
    return summary


def _write_json(out: TextIO, files: list[Path], pipeline: Pipeline, results: list[Result]) -> None:
    document = {
        "kind": "KubeproofAuditScan",
        "inputs": [str(p) for p in files],
        "summary": _summary(pipeline),
        "results": [result_json(r) for r in results],
    }
    out.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")


def _write_table(out: TextIO, pipeline: Pipeline, results: list[Result]) -> None:
    detections = pipeline.detections()
    rows = [("SEVERITY", "DETECTOR", "SUBJECT", "COUNT", "FIRST", "AUDIT ID", "WHAT")]
    for detection in detections:
        result = detection.result()
        evidence = result.extra["evidence"]
        rows.append(
            (
                result.check.severity.value,
                result.check.id,
                evidence["user"],
                str(detection.count),
                evidence["firstTime"][:19],
                evidence["auditIDs"][0],
                result.message,
            )
        )
    if len(rows) > 1:
        widths = [max(len(row[i]) for row in rows) for i in range(6)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row[:6], widths, strict=True)]
            out.write("  ".join([*cells, row[6]]).rstrip() + "\n")
    else:
        out.write("No detections.\n")
    for result in results:
        if result.status.value == "not_evaluated":
            out.write(f"not evaluated: {result.check.id}: {result.reason}\n")
    stats = pipeline.stats
    out.write(
        f"{stats.events} events ({stats.duplicates} duplicates, {stats.other_stages} of other "
        f"stages, {stats.malformed} malformed lines skipped), {len(detections)} detections\n"
    )
    _write_problems(out, stats)


def _write_problems(out: TextIO, stats: ParseStats) -> None:
    for problem in stats.problems[:MAX_PROBLEMS_SHOWN]:
        out.write(f"skipped {problem}\n")
    if stats.malformed > MAX_PROBLEMS_SHOWN:
        out.write(f"... and {stats.malformed - MAX_PROBLEMS_SHOWN} more malformed lines\n")


# --- follow ---------------------------------------------------------------------------


def run_follow(arguments: argparse.Namespace) -> int:
    if arguments.poll_interval <= 0:
        raise UsageError("--poll-interval must be positive")
    pipeline = _pipeline(arguments, learn=False)
    store = _evidence_store(arguments)
    follower = LogFollower(
        arguments.file, from_start=arguments.from_start, max_line_bytes=arguments.max_line_bytes
    )
    # A stop is noticed between polls, never in the middle of printing and recording a
    # detection: what was printed is recorded.
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    emitted = 0
    recorder = _recorder(store, arguments, lambda: _follow_counters(pipeline, emitted))
    _say_recording(recorder)
    try:
        for detection in _follow(follower, pipeline, arguments, stop):
            line = orjson.dumps(result_json(detection.result()))
            sys.stdout.write(line.decode() + "\n")
            sys.stdout.flush()
            emitted += 1
            if recorder is not None:
                recorder.add(line)
    except AuditInputError as error:
        raise UsageError(str(error)) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        follower.close()
        _save(pipeline, arguments.baseline)
        status = _close_recorder(recorder)
    return status


def _follow_counters(pipeline: Pipeline, detections: int) -> dict[str, int]:
    stats = pipeline.stats
    return {
        "lines": stats.lines,
        "events": stats.events,
        "duplicates": stats.duplicates,
        "other_stages": stats.other_stages,
        "malformed": stats.malformed,
        "detections": detections,
    }


def _follow(
    follower: LogFollower, pipeline: Pipeline, arguments: argparse.Namespace, stop: threading.Event
) -> Iterator[Detection]:
    source = str(arguments.file)
    reported = 0
    announced = False
    while not stop.is_set():
        lines = follower.poll()
        if not announced:  # positioned: what is written from now on will be seen
            print(f"kubeproof: following {source}", file=sys.stderr, flush=True)
            announced = True
        for event in events_from_lines(
            lines, source, pipeline.stats, max_line_bytes=arguments.max_line_bytes
        ):
            yield from pipeline.feed(event)
        problems = pipeline.stats.problems
        for problem in problems[reported:]:
            print(f"kubeproof: skipped {problem}", file=sys.stderr, flush=True)
        reported = len(problems)
        if not lines:
            stop.wait(arguments.poll_interval)


# --- serve ----------------------------------------------------------------------------


def run_serve(arguments: argparse.Namespace) -> int:
    from kubeproof.audit.pod_owner import PodOwners
    from kubeproof.audit.receiver import Receiver
    from kubeproof.audit.server import AuditServer
    from kubeproof.notify.message import from_detection
    from kubeproof.serving import CertificateReloader, TlsError, log_line

    pipeline = _pipeline(arguments, learn=False)
    owners = PodOwners(_owner_client(arguments))
    store = _evidence_store(arguments)
    notifier = notifier_from(arguments, log_line)
    output = threading.Lock()
    recorder: DetectionRecorder | None = None

    def emit(result: Result) -> None:
        line = orjson.dumps(result_json(result))
        with output:
            sys.stdout.write(line.decode() + "\n")
            sys.stdout.flush()
        if recorder is not None:
            recorder.add(line)
        if notifier is not None:
            notifier.submit(from_detection(result))

    try:
        certificates = CertificateReloader(
            arguments.tls_cert, arguments.tls_key, client_ca_file=arguments.client_ca
        )
        receiver = Receiver(pipeline, owners, emit)
        server = AuditServer((arguments.host, arguments.port), receiver, certificates)
    except TlsError as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(
            f"cannot listen on {arguments.host}:{arguments.port}: {error.strerror}"
        ) from None
    recorder = _recorder(store, arguments, receiver.counters)
    server.extra_metrics = _extra_metrics(notifier, recorder)
    previous = signal.signal(signal.SIGTERM, lambda *_: _shut_down(server))
    print(
        f"kubeproof: listening on https://{arguments.host}:{server.port} "
        "(POST /audit, POST /falco, GET /metrics)",
        file=sys.stderr,
        flush=True,
    )
    _say_recording(recorder)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
        if notifier is not None:
            notifier.close()
        _save(pipeline, arguments.baseline)
        status = _close_recorder(recorder)
    return status


def _extra_metrics(notifier: Any, recorder: DetectionRecorder | None) -> Any:
    sources = [s.metrics_lines for s in (notifier, recorder) if s is not None]
    if not sources:
        return None
    return lambda: [line for source in sources for line in source()]


def _shut_down(server: Any) -> None:
    # shutdown() waits for serve_forever, so it must run on another thread.
    threading.Thread(target=server.shutdown, daemon=True).start()


def _owner_client(arguments: argparse.Namespace) -> Any:
    if arguments.kubeconfig is None and arguments.context is None:
        return None
    from kubeproof.sources.cluster import ApiClient
    from kubeproof.sources.kubeconfig import KubeconfigError, load_connection

    try:
        return ApiClient(load_connection(arguments.kubeconfig, arguments.context))
    except KubeconfigError as error:
        raise UsageError(str(error)) from None


def run_webhook_config(arguments: argparse.Namespace) -> int:
    from kubeproof.audit.webhook_config import WebhookConfigError, webhook_kubeconfig

    try:
        text = webhook_kubeconfig(
            arguments.url, arguments.ca_file, arguments.client_cert, arguments.client_key
        )
    except WebhookConfigError as error:
        raise UsageError(str(error)) from None
    sys.stdout.write(text)
    return EXIT_CLEAN
