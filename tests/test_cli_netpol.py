"""`kubeproof netpol matrix` as a user runs it: formats, filters, errors without tracebacks."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from kubeproof.cli.main import main
from paths import ROOT

EXAMPLES = str(ROOT / "examples")
WEB, API = "Deployment/shop/web", "Deployment/shop/api"
POSTGRES, WORKER = "StatefulSet/shop-data/postgres", "Deployment/shop-data/worker"
REPORT = "CronJob/shop/nightly-report"


def run_json(capsys: pytest.CaptureFixture[str], *arguments: str) -> dict[str, Any]:
    assert main(["netpol", "matrix", EXAMPLES, "-o", "json", *arguments]) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def cells(document: dict[str, Any]) -> dict[tuple[str, str], list[str]]:
    rows = document["matrix"]
    assert isinstance(rows, list)
    return {
        (row["source"], cell["destination"]): cell["ports"]
        for row in rows
        for cell in row["destinations"]
    }


def test_json_matrix_of_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    document = run_json(capsys)
    assert document["workloads"] == [REPORT, API, WEB, WORKER, POSTGRES]
    assert document["namespace"] is None and document["port"] is None
    assert document["namespaces_without_object"] == [] and document["incomplete"] is None
    found = cells(document)
    assert found[(WEB, API)] == ["TCP/8080"]
    assert found[(API, WEB)] == []
    assert found[(API, POSTGRES)] == ["TCP/5432"]
    assert found[(REPORT, POSTGRES)] == ["TCP/5432"]
    assert found[(WORKER, POSTGRES)] == ["TCP/5432"]  # postgres admits the worker by label
    assert found[(WEB, POSTGRES)] == []
    assert found[(API, "external")] == ["TCP/443"]
    assert found[(REPORT, "external")] == ["TCP/587"]
    assert found[("external", WORKER)] == ["all"]  # no policy governs the worker
    assert found[("external", WEB)] == []
    assert len(found) == 6 * 6
    isolation = {i["workload"]: i for i in document["isolation"]}
    assert isolation[WORKER] == {
        "workload": WORKER,
        "ingress": "open",
        "egress": "open",
        "from_outside": ["0.0.0.0/0", "::/0"],
        "to_outside": ["0.0.0.0/0", "::/0"],
    }
    assert isolation[API]["to_outside"] == ["0.0.0.0/0 except 169.254.169.254/32"]
    assert isolation[REPORT]["ingress"] == "isolated"  # shop's default deny


def test_namespace_and_port_filters(capsys: pytest.CaptureFixture[str]) -> None:
    document = run_json(capsys, "-n", "shop", "--port", "8080/tcp")
    assert document["workloads"] == [REPORT, API, WEB]
    assert document["port"] == "8080/TCP"
    allowed = {pair for pair, ports in cells(document).items() if ports}
    assert allowed == {(WEB, API)}


def test_table_has_a_legend_and_a_grid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["netpol", "matrix", EXAMPLES, "-n", "shop-data"]) == 0
    out = capsys.readouterr().out
    assert "1  Deployment/shop-data/worker" in out
    assert "ext  external" in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split() == ["1", "2", "ext"])
    assert lines[header + 1].split() == ["1", "all", "TCP/5432", "all"]
    assert lines[header + 3].split() == ["ext", "all", "-", "-"]
    assert all(line == line.rstrip() for line in lines)


def test_csv_with_one_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["netpol", "matrix", EXAMPLES, "-o", "csv", "--port", "5432"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0][0] == "source \\ destination" and rows[0][-1] == "external"
    by_source = {row[0]: dict(zip(rows[0][1:], row[1:], strict=True)) for row in rows[1:]}
    assert by_source[API][POSTGRES] == "allowed"
    assert by_source[WEB][POSTGRES] == "denied"
    assert by_source["external"][POSTGRES] == "denied"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--port", "http"], "--port 'http': port must be a number"),
        (["--port", "80/icmp"], "protocol must be TCP, UDP or SCTP"),
        (["-n", "nowhere"], "--namespace nowhere: no such namespace"),
    ],
)
def test_usage_errors_exit_2_with_a_message(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["netpol", "matrix", EXAMPLES, *arguments]) == 2
    assert message in capsys.readouterr().err


def test_no_input_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["netpol", "matrix"]) == 2
    assert "nothing to read" in capsys.readouterr().err


def test_broken_input_still_prints_the_matrix_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.yaml").write_text("a: [1\n")
    (tmp_path / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: t}\n"
        "spec: {containers: [{name: c, image: i}]}\n"
    )
    assert main(["netpol", "matrix", str(tmp_path), "-o", "json"]) == 2
    captured = capsys.readouterr()
    assert "broken.yaml" in captured.err
    assert "no Namespace object for t:" in captured.err
    document = json.loads(captured.out)
    assert document["workloads"] == ["Pod/t/p"]
    assert document["namespaces_without_object"] == ["t"]


def test_the_example_in_docs_is_what_the_command_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = (ROOT / "docs" / "netpol.md").read_text(encoding="utf-8")
    block = text.split("$ kubeproof netpol matrix examples/\n", 1)[1].split("```", 1)[0]
    assert main(["netpol", "matrix", EXAMPLES]) == 0
    assert capsys.readouterr().out == block
