"""`kubeproof audit scan` and `kubeproof audit follow` as a user runs them, and the
baseline file they keep: formats, exit codes, learning, hostile input, no secrets."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from audit.auditlog import event, line, secret_write, write_log
from kubeproof.audit import baseline as baseline_module
from kubeproof.audit.baseline import Baseline, BaselineError, load_baseline, save_baseline
from kubeproof.cli.main import main

SECRET = "pa55-Word-That-Must-Not-Leak-7c1d"
ANONYMOUS = {"user": "system:anonymous", "groups": ("system:unauthenticated",)}


def scan(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, Any, str]:
    code = main(["audit", "scan", *arguments, "-o", "json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out else None, captured.err


def test_scan_reports_detections_in_json_with_criteria_and_evidence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = write_log(
        tmp_path / "audit.log",
        [
            event(
                verb="create", subresource="exec", code=101, audit_id="exec-1", source_ip="10.1.1.1"
            ),
            secret_write(SECRET),
            event(**ANONYMOUS, resource=None, uri="/version", audit_id="anon-1"),
        ],
    )
    code, report, _ = scan(capsys, str(log))
    assert code == 1
    by_check = {r["check"]: r for r in report["results"] if r["status"] == "fail"}
    assert set(by_check) == {"audit.pod-exec", "audit.anonymous-allowed"}
    exec_result = by_check["audit.pod-exec"]
    assert exec_result["evidence"]["auditIDs"] == ["exec-1"]
    assert exec_result["evidence"]["sourceIPs"] == ["10.1.1.1"]
    assert exec_result["subject"] == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "User",
        "namespace": None,
        "name": "alice",
    }
    assert exec_result["severity"] == "high" and "CC7.2" in exec_result["criteria"]
    assert report["summary"]["events"] == 3
    assert SECRET not in json.dumps(report)


def test_scan_without_detections_exits_clean_and_says_what_was_not_evaluated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = write_log(tmp_path / "audit.log", [event(), event(verb="create", code=201)])
    code = main(["audit", "scan", str(log)])
    out = capsys.readouterr().out
    assert code == 0
    assert "No detections." in out
    assert "not evaluated: audit.privileged-pod-created: 1 x pod creation logged without" in out
    assert "not evaluated: audit.new-source-ip: every event fell in the baseline's learning" in out


def test_scan_reads_rotated_gzip_files_and_skips_bad_lines_by_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rotated = tmp_path / "audit-2026-03-02T09-00-00.000.log.gz"
    rotated.write_bytes(gzip.compress(line(event(verb="create", subresource="exec", audit_id="x"))))
    os.utime(rotated, (1_700_000_000, 1_700_000_000))
    live = tmp_path / "audit.log"
    live.write_bytes(
        line(event())
        + b"\x00\x01garbage\n"
        + line(event(verb="create", subresource="exec", audit_id="x"))
    )  # duplicate across files
    code, report, _ = scan(capsys, str(live), str(rotated))
    assert code == 1
    assert report["inputs"] == [str(rotated), str(live)]
    summary = report["summary"]
    assert (summary["events"], summary["duplicates"], summary["malformed"]) == (2, 1, 1)
    reason = "not JSON (unexpected character, expected a JSON value at character 0)"
    assert summary["problems"] == [{"source": str(live), "line": 2, "reason": reason}]


def test_learn_then_compare_with_the_saved_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline_file = tmp_path / "baseline.json"
    routine = [event(user="ci", at=i, source_ip="10.0.0.5") for i in range(30)]
    code, report, _ = scan(
        capsys,
        str(write_log(tmp_path / "a.log", routine)),
        "--baseline",
        str(baseline_file),
        "--learn",
    )
    assert code == 0 and baseline_file.exists()
    learned = load_baseline(baseline_file)
    assert learned.subjects["ci"].source_ips == {"10.0.0.5"}
    assert learned.learning_ends is not None
    later = [
        event(user="ci", at=100, source_ip="10.0.0.5"),
        event(user="ci", at=101, source_ip="192.0.2.7", audit_id="stolen"),
    ]
    code, report, _ = scan(
        capsys, str(write_log(tmp_path / "b.log", later)), "--baseline", str(baseline_file)
    )
    assert code == 1
    [detection] = [r for r in report["results"] if r["status"] == "fail"]
    assert detection["check"] == "audit.new-source-ip"
    assert detection["evidence"]["auditIDs"] == ["stolen"]
    assert load_baseline(baseline_file).subjects["ci"].source_ips == {"10.0.0.5"}  # frozen


def test_learning_period_is_configurable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = [event(user="ci", at=i) for i in range(5)]
    events.append(event(user="ci", at=7200, source_ip="192.0.2.7", audit_id="late"))
    code, report, _ = scan(
        capsys, str(write_log(tmp_path / "a.log", events)), "--learning-period", "1h"
    )
    assert code == 1
    assert [r["evidence"]["auditIDs"] for r in report["results"] if r["status"] == "fail"] == [
        ["late"]
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["missing.log"], "missing.log: cannot be read"),
        (["."], "is a directory"),
        (["LOG", "--learn"], "--learn needs --baseline FILE"),
        (["LOG", "--learning-period", "soon"], "--learning-period 'soon'"),
        (["LOG", "--learning-period", "999999999999d"], "at most 3650d"),
        (["LOG", "--baseline", "LOOP"], "Too many levels of symbolic links"),
        (["LOG", "--baseline", "BAD"], "baseline"),
        (["LOG", "--burst", "0"], "--burst must be at least 1"),
    ],
)
def test_usage_errors_name_the_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    log = write_log(tmp_path / "audit.log", [event()])
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "KubeproofAuditBaseline", "version": 1, "subjects": []}')
    loop = tmp_path / "loop.json"
    loop.symlink_to(loop)
    named = {"LOG": str(log), "BAD": str(bad), "LOOP": str(loop)}
    replaced = [named.get(a, a) for a in arguments]
    os.chdir(tmp_path)
    code = main(["audit", "scan", *replaced])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[]", "not a kubeproof audit baseline"),
        ('{"kind": "KubeproofAuditBaseline", "version": 9}', "format version 9"),
        (
            '{"kind": "KubeproofAuditBaseline", "version": 1, "learningPeriodSeconds": 1, '
            '"subjects": {"a": {"hours": [1]}}}',
            "subject 'a': hours must be 24",
        ),
        ("\xff not json", "baseline"),
        ("[" * 100_000, "nested too deeply"),
        (
            '{"kind": "KubeproofAuditBaseline", "version": 1, "learningPeriodSeconds": 1e308, '
            '"subjects": {}}',
            "learningPeriodSeconds must be a number from 0 to",
        ),
    ],
)
def test_hostile_baseline_files_are_refused_by_name(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "b.json"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(Exception, match="baseline") as raised:
        load_baseline(path)
    assert str(path) in str(raised.value) and problem.split(":")[0] in str(raised.value)


def test_an_oversized_baseline_is_refused_without_being_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(baseline_module, "MAX_BASELINE_BYTES", 64)
    path = tmp_path / "b.json"
    path.write_text("{" + " " * 64 + "}")
    with pytest.raises(BaselineError, match=f"baseline {path} is larger than 64 bytes"):
        load_baseline(path)


def test_a_baseline_survives_saving_and_loading(tmp_path: Path) -> None:
    baseline = Baseline(learning_period_s=60.0, learning_started=1.0e9, learning_ends=1.0e9 + 60)
    from kubeproof.audit.events import ParseStats, events_from_lines

    stats = ParseStats()
    for parsed in events_from_lines(
        [(1, line(event(user="ci", verb="list", resource="secrets")))], "x", stats
    ):
        baseline.learn(parsed)
    save_baseline(baseline, tmp_path / "b.json")
    loaded = load_baseline(tmp_path / "b.json")
    assert loaded.as_json() == baseline.as_json()
    assert loaded.subjects["ci"].secret_reads == 1


# --- follow -----------------------------------------------------------------------------


def test_follow_prints_detections_as_json_lines_across_rotation(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(line(event(verb="create", subresource="exec", audit_id="before-start")))
    baseline_file = tmp_path / "baseline.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubeproof",
            "audit",
            "follow",
            str(log),
            "--poll-interval",
            "0.05",
            "--baseline",
            str(baseline_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # A stuck follower must fail the test, not hang it.
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None and process.stderr is not None
        assert process.stderr.readline().startswith("kubeproof: following")
        with log.open("ab") as handle:
            handle.write(line(event(verb="create", subresource="exec", audit_id="first")))
            handle.write(b"{broken\n")
        first = json.loads(process.stdout.readline())
        os.rename(log, tmp_path / "audit-1.log")
        write_log(log, [event(**ANONYMOUS, resource=None, uri="/version", audit_id="after")])
        second = json.loads(process.stdout.readline())
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        watchdog.cancel()
    assert (first["check"], first["evidence"]["auditIDs"]) == ("audit.pod-exec", ["first"])
    assert (second["check"], second["evidence"]["auditIDs"]) == (
        "audit.anonymous-allowed",
        ["after"],
    )
    assert process.returncode == 0
    assert f"skipped {log}:3: not JSON" in err
    assert load_baseline(baseline_file).subjects.keys() == {"alice", "system:anonymous"}


def test_binary_garbage_and_empty_files_give_counts_not_tracebacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.log"
    garbage.write_bytes(bytes(range(256)) * 400 + b"\n\xff\xfe{{{\n" + b"\x00" * 10_000)
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    code, report, err = scan(capsys, str(garbage), str(empty))
    assert code == 0 and "Traceback" not in err
    assert report["summary"]["events"] == 0 and report["summary"]["malformed"] >= 2
    not_evaluated = [r for r in report["results"] if r["status"] == "not_evaluated"]
    assert len(not_evaluated) == 14
    assert {r["reason"] for r in not_evaluated} == {"no audit events were read"}
