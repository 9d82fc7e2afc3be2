"""The command line as a user runs it: exit codes, formats, errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kubeproof.cli.main import main
from paths import ROOT

EXAMPLES = ROOT / "examples"

PRIVILEGED = """apiVersion: v1
kind: Pod
metadata: {name: root, namespace: team}
spec:
  containers:
  - name: app
    image: app@sha256:0000000000000000000000000000000000000000000000000000000000000000
    securityContext: {privileged: true}
"""


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    directory = tmp_path / "manifests"
    directory.mkdir()
    (directory / "pod.yaml").write_text(PRIVILEGED)
    return directory


def test_json_report_and_fail_on_exit_codes(
    manifests: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "report.json"
    code = main(["scan", str(manifests), "--format", "json", "--output", str(output)])
    assert code == 1  # default --fail-on info: any failing result
    report = json.loads(output.read_text())
    privileged = [r for r in report["results"] if r["check"] == "pss.privileged"]
    assert privileged and privileged[0]["status"] == "fail"
    assert privileged[0]["location"] == {"file": str(manifests / "pod.yaml"), "line": 1}
    assert main(["scan", str(manifests), "--fail-on", "none", "-o", "json"]) == 0
    capsys.readouterr()


def test_input_errors_exit_2_but_still_report(
    manifests: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (manifests / "broken.yaml").write_text("a: [1\n")
    code = main(["scan", str(manifests), "--fail-on", "none", "-o", "json"])
    captured = capsys.readouterr()
    assert code == 2
    report = json.loads(captured.out)
    assert report["errors"][0]["source"].endswith("broken.yaml")
    assert any(r["check"] == "pss.privileged" for r in report["results"])
    assert "broken.yaml" in captured.err


@pytest.mark.parametrize(
    "arguments",
    [
        ["scan", "x", "--framework", "nope"],
        ["scan", "x", "--pss-version", "v2.0"],
        ["explain", "no.such-check"],
    ],
)
def test_usage_errors_exit_2_with_a_message(
    arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(arguments) == 2
    assert "kubeproof: error:" in capsys.readouterr().err


def test_unwritable_output_is_a_usage_error(
    manifests: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["scan", str(manifests), "--output", str(manifests / "no" / "dir" / "r.json")])
    assert code == 2
    assert "cannot write --output" in capsys.readouterr().err


def test_table_groups_by_criterion(manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["scan", str(manifests)])
    out = capsys.readouterr().out
    assert "Summary by SOC 2 criterion" in out
    assert "CC6.1" in out and "failing" in out
    assert "pss.privileged" in out


def test_table_groups_failures_by_criterion_most_severe_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "pods"
    directory.mkdir()
    for number in range(5):
        (directory / f"pod-{number}.yaml").write_text(PRIVILEGED.replace("root", f"root-{number}"))
    main(["scan", str(directory), "--fail-on", "none"])
    out = capsys.readouterr().out
    sections = out.split("\nCC")  # one per criterion with failures, after the summary
    cc61 = next(s for s in sections if s.startswith("6.1 · "))
    cc68 = next(s for s in sections if s.startswith("6.8 · "))
    # Under its first criterion a check shows three examples; under the next, a pointer.
    assert "  critical pss.privileged · 5 failing\n    Pod/team/root-0 · " in cc61
    assert "pod-0.yaml:1" in cc61 and "Pod/team/root-3" not in cc61 and "… and 2 more" in cc61
    assert "  critical pss.privileged · 5 failing (examples under CC6.1)\n" in cc68
    order = ["critical", "high", "medium", "low", "info"]
    check_lines = [line.split()[0] for line in cc61.splitlines() if line[2:3].isalpha()]
    severities = [word for word in check_lines if word in order]
    assert len(severities) > 3 and severities == sorted(severities, key=order.index)


def test_catalogue_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frameworks", "-o", "json"]) == 0
    ids = {f["id"] for f in json.loads(capsys.readouterr().out)}
    assert ids == {"soc2", "cis", "pss-baseline", "pss-restricted"}
    assert main(["checks", "--framework", "pss-restricted", "-o", "json"]) == 0
    checks = json.loads(capsys.readouterr().out)
    assert len(checks) == 19
    assert main(["explain", "pss.privileged"]) == 0
    assert "Remediation" in capsys.readouterr().out
    assert main(["explain", "image.vulnerability-critical", "-o", "json"]) == 0
    image_check = json.loads(capsys.readouterr().out)
    assert image_check["frameworks"] == ["soc2"]
    assert set(image_check["criteria"]) == {"CC6.6"}


def test_module_entry_point_and_stdin(manifests: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "kubeproof", "scan", "-", "-o", "json", "--fail-on", "none"],
        input=PRIVILEGED,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["scan"]["sources"] == ["-"]
    assert "Traceback" not in completed.stderr


def test_catalogue_has_at_least_sixty_checks_with_rationales() -> None:
    from kubeproof.checks import catalogue

    checks = catalogue()
    assert len(checks) >= 60
    for check in checks:
        assert check.spec.criteria and all(check.spec.criteria.values())


def test_cluster_name_names_the_cluster_of_a_file_scan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(EXAMPLES), "-o", "json", "--fail-on", "none"]) == 0
    assert json.loads(capsys.readouterr().out)["scan"]["cluster"] == "manifests"
    arguments = ["scan", str(EXAMPLES), "-o", "json", "--fail-on", "none", "--cluster-name", "eu-1"]
    assert main(arguments) == 0
    assert json.loads(capsys.readouterr().out)["scan"]["cluster"] == "eu-1"
    assert main(["scan", str(EXAMPLES), "--cluster-name", " "]) == 2
    assert "--cluster-name must not be empty" in capsys.readouterr().err
