"""`kubeproof audit scan FILE...` and `kubeproof audit follow FILE`: anomaly detection
over Kubernetes audit logs (SOC 2 CC7.2). Exit codes: scan 0 no detection, 1 detections,
2 usage or input errors; follow runs until interrupted (0 on SIGINT or SIGTERM)."""

from __future__ import annotations

import argparse
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import orjson

from kubeproof.audit.baseline import (
    DEFAULT_LEARNING_PERIOD_S,
    Baseline,
    BaselineError,
    load_baseline,
    save_baseline,
)
from kubeproof.audit.events import DEFAULT_MAX_LINE_BYTES, ParseStats, events_from_lines
from kubeproof.audit.pipeline import Detection, Pipeline
from kubeproof.audit.source import AuditInputError, LogFollower, events_in_file, oldest_first
from kubeproof.cli.errors import EXIT_CLEAN, EXIT_FAILURES, UsageError
from kubeproof.model import Result
from kubeproof.redaction import redact

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
    follow.set_defaults(run=run_follow)


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


def parse_duration(text: str) -> float:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"--learning-period {text!r}: expected a number with s, m, h or d")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


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
    return EXIT_FAILURES if pipeline.detections() else EXIT_CLEAN


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


class _Stop(Exception):
    pass


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def run_follow(arguments: argparse.Namespace) -> int:
    if arguments.poll_interval <= 0:
        raise UsageError("--poll-interval must be positive")
    pipeline = _pipeline(arguments, learn=False)
    follower = LogFollower(
        arguments.file, from_start=arguments.from_start, max_line_bytes=arguments.max_line_bytes
    )
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        for detection in _follow(follower, pipeline, arguments):
            sys.stdout.write(orjson.dumps(result_json(detection.result())).decode() + "\n")
            sys.stdout.flush()
    except (_Stop, KeyboardInterrupt):
        pass
    except AuditInputError as error:
        raise UsageError(str(error)) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        follower.close()
        _save(pipeline, arguments.baseline)
    return EXIT_CLEAN


def _follow(
    follower: LogFollower, pipeline: Pipeline, arguments: argparse.Namespace
) -> Iterator[Detection]:
    source = str(arguments.file)
    reported = 0
    announced = False
    while True:
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
            time.sleep(arguments.poll_interval)
