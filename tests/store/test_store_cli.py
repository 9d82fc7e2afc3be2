"""`kubeproof history` and `kubeproof findings` over a recorded history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from store_helpers import T0, deployment, record

from databases import Database
from kubeproof.cli.main import main
from kubeproof.store.db import Store, open_store

PRIVILEGED = "pss.privileged"
# Deadlines far in the future, whenever the tests run: nothing is overdue under them.
GENEROUS = "critical=36500,high=36500,medium=36500,low=36500"


@pytest.fixture
def store(database: Database) -> Iterator[Store]:
    """Day 0: storefront fails pss.privileged; day 1: fixed; day 3: broken again. The
    checkout Deployment exists on day 0 only (deleted by day 1)."""
    opened = open_store(database.url)
    record(opened, deployment(), deployment("checkout", uid="b"), day=0)
    record(opened, deployment(privileged=False), day=1)
    record(opened, deployment(), day=3)
    yield opened
    opened.close()


def run_json(capsys: pytest.CaptureFixture[str], *arguments: str) -> Any:
    assert main(list(arguments)) == 0
    return json.loads(capsys.readouterr().out)


def test_history_shows_when_each_check_failed_and_which_scans(
    store: Store, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    data = run_json(
        capsys, "history", "Deployment/shop/storefront", "--db", database.url, "-o", "json"
    )
    findings = data["findings"]
    [privileged] = [f for f in findings if f["check"] == PRIVILEGED]
    assert privileged["reopened"] == 1 and privileged["state"] == "open"
    first, second = privileged["intervals"]
    assert (first["openedByScan"], first["closedByScan"], first["closedAs"]) == (1, 2, "resolved")
    assert first["openSeconds"] == int(timedelta(days=1).total_seconds())
    assert (second["openedByScan"], second["closedByScan"]) == (3, None)
    assert second["openedAt"] == (T0 + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    assert main(["history", "Deployment/shop/storefront", "--db", database.url]) == 0
    table = capsys.readouterr().out
    assert "Deployment/shop/storefront in prod: first seen 2026-01-05 09:00 UTC" in table
    line = next(row for row in table.splitlines() if row.startswith(PRIVILEGED))
    assert "(scan #1)" in line and "(scan #2)" in line and "resolved" in line and "1d 0h" in line
    assert "still failing" in table


def test_history_of_a_deleted_workload_and_a_namespace(
    store: Store, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    data = run_json(
        capsys, "history", "Deployment/shop/checkout", "--db", database.url, "-o", "json"
    )
    [seen] = data["seen"]
    assert seen["deletedAt"] == (T0 + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    findings = data["findings"]
    assert findings
    assert {f["state"] for f in findings} == {"deleted"}
    assert {i["closedAs"] for f in findings for i in f["intervals"]} == {"deleted"}

    data = run_json(capsys, "history", "Namespace/shop", "--db", database.url, "-o", "json")
    assert data["subject"] == {
        "kind": "Namespace",
        "namespace": None,
        "name": "shop",
        "container": None,
    }
    assert data["seen"]


def test_history_rejects_a_malformed_subject(
    store: Store, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "storefront", "--db", database.url]) == 2
    assert "Kind/namespace/name" in capsys.readouterr().err


def test_findings_filters_and_deadlines(
    store: Store, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    every = run_json(capsys, "findings", "--db", database.url, "-o", "json")["findings"]
    opened = run_json(capsys, "findings", "--open", "--db", database.url, "-o", "json")
    deleted = run_json(capsys, "findings", "--deleted", "--db", database.url, "-o", "json")
    assert {f["state"] for f in opened["findings"]} == {"open"}
    assert {f["subject"]["name"] for f in deleted["findings"]} == {"checkout"}
    assert len(every) == len(opened["findings"]) + len(deleted["findings"])

    [privileged] = [f for f in every if f["check"] == PRIVILEGED and f["state"] == "open"]
    # First seen on day 0, critical: due 15 days later (the SLA runs from first_seen).
    assert privileged["severity"] == "critical"
    assert privileged["due"] == (T0 + timedelta(days=15)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert privileged["overdue"] is True  # T0 is long past

    overdue = run_json(capsys, "findings", "--overdue", "--db", database.url, "-o", "json")
    assert PRIVILEGED in {f["check"] for f in overdue["findings"]}
    assert all(f["state"] == "open" for f in overdue["findings"])
    relaxed = run_json(
        capsys, "findings", "--overdue", "--sla", GENEROUS, "--db", database.url, "-o", "json"
    )
    assert relaxed["findings"] == []
    custom = run_json(
        capsys, "findings", "--open", "--sla", "critical=7", "--db", database.url, "-o", "json"
    )
    [privileged] = [f for f in custom["findings"] if f["check"] == PRIVILEGED]
    assert privileged["subject"]["name"] == "storefront"
    assert privileged["due"] == (T0 + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    assert main(["findings", "--open", "--db", database.url]) == 0
    table = capsys.readouterr().out
    assert "OVERDUE" in table and "Deployment/shop/storefront" in table


def test_findings_rejects_a_bad_sla(
    store: Store, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["findings", "--sla", "urgent=3", "--db", database.url]) == 2
    assert "unknown severity 'urgent'" in capsys.readouterr().err
    assert main(["findings", "--sla", "high=soon", "--db", database.url]) == 2
    assert "whole number of days" in capsys.readouterr().err
