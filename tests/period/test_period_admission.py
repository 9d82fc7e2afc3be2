"""The period report's admission-control evidence (CC6.8): the webhook's decisions in the
store, counted by answer and by rule and namespace, in every format."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import period_helpers
import pytest
from trestle.oscal.assessment_results import AssessmentResults

from databases import Database
from kubeproof.cli.main import main
from kubeproof.store.db import open_store
from kubeproof.store.decisions import record_batch

T0 = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)  # a Monday
PERIOD = ("2026-02-02", "2026-02-08")
DIGEST = "sha256:" + "cd" * 32


def decision(
    uid: str,
    at: datetime,
    answer: str,
    namespace: str,
    broken: tuple[str, ...] = (),
    excepted: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    rules = [{"check": rule, "outcome": "fail"} for rule in broken]
    rules += [{"check": c, "outcome": "excepted", "exception": e} for c, e in excepted]
    rules.append({"check": "pss.run-as-non-root", "outcome": "pass"})
    return {
        "uid": uid,
        "decided_at": at,
        "username": "system:serviceaccount:ci:deployer",
        "groups": ["system:serviceaccounts"],
        "operation": "CREATE",
        "api_group": "apps",
        "kind": "Deployment",
        "namespace": namespace,
        "name": f"app-{uid}",
        "owner_kind": "",
        "owner_name": "",
        "images": [
            {"container": "app", "image": f"registry.example.com/app@{DIGEST}", "digest": DIGEST}
        ],
        "rules": rules,
        "decision": answer,
        "allowed": answer != "denied",
        "mode": {"denied": "enforce", "warned": "warn", "audited": "audit"}.get(answer, "enforce"),
        "dry_run": uid.endswith("dry"),
        "policy_digest": "e" * 64,
        "reason": f"breaks {', '.join(broken)}" if broken else "no rule broken",
    }


@pytest.fixture
def decisions(database: Database) -> Iterator[Database]:
    """A week of decisions in prod (and one in staging, one the week after)."""
    store = open_store(database.url)
    day = timedelta(days=1)
    batches = [
        (
            "prod",
            [
                decision("a", T0, "denied", "shop", ("pss.privileged", "images.allowed-source")),
                decision("b", T0 + timedelta(minutes=1), "denied", "shop", ("pss.privileged",)),
                decision("c", T0 + timedelta(minutes=2), "allowed", "shop"),
            ],
        ),
        (
            "prod",
            [
                decision("d", T0 + day, "warned", "dev-1", ("pss.privileged",)),
                decision("e", T0 + day, "denied", "payments", ("images.signed",)),
                decision("f", T0 + day, "allowed", "shop", (), (("pss.privileged", "EXC-3"),)),
                decision("gdry", T0 + day, "audited", "sandbox", ("pss.host-network",)),
            ],
        ),
        ("staging", [decision("s", T0 + 2 * day, "denied", "shop", ("pss.privileged",))]),
        ("prod", [decision("late", T0 + 8 * day, "denied", "shop", ("pss.privileged",))]),
    ]
    for cluster, rows in batches:
        record_batch(store, rows, cluster=cluster, webhook="w", recorded_at=rows[-1]["decided_at"])
    store.close()
    yield database


report = partial(period_helpers.report, period=PERIOD)


def test_json_counts_decisions_by_answer_rule_and_namespace(
    decisions: Database, tmp_path: Path
) -> None:
    output = tmp_path / "report.json"
    assert report(decisions, output, "json", "--cluster", "prod") == 0
    admission = json.loads(output.read_text())["admission"]
    # The staging decision and the one after the period are not counted.
    assert admission["decisions"] == 7
    answers = {k: v for k, v in admission["byAnswer"].items() if v}
    assert answers == {"denied": 3, "allowed": 2, "warned": 1, "audited": 1}
    assert (admission["dryRuns"], admission["batches"], admission["daysWithDecisions"]) == (1, 2, 2)
    by_rule = Counter(
        {(r["rule"], r["answer"], r["namespace"]): r["requests"] for r in admission["byRule"]}
    )
    assert by_rule == Counter(
        {
            ("pss.privileged", "denied", "shop"): 2,
            ("images.allowed-source", "denied", "shop"): 1,
            ("images.signed", "denied", "payments"): 1,
            ("pss.privileged", "warned", "dev-1"): 1,
            ("pss.host-network", "audited", "sandbox"): 1,
        }
    )
    assert admission["exceptions"] == [
        {"exception": "EXC-3", "rule": "pss.privileged", "requests": 1}
    ]
    every_cluster = tmp_path / "all.json"
    assert report(decisions, every_cluster, "json") == 0
    assert json.loads(every_cluster.read_text())["admission"]["decisions"] == 8


def test_html_shows_what_was_denied_and_an_empty_period_says_so(
    decisions: Database, tmp_path: Path
) -> None:
    output = tmp_path / "report.html"
    assert report(decisions, output, "html", "--cluster", "prod") == 0
    page = output.read_text()
    section = page[page.index('id="admission"') :]
    assert "Admission control (CC6.8" in section
    assert "7 admission requests were decided on 2 days" in section
    assert "<h3>Requests denied, by rule</h3>" in section
    denied = section[section.index("Requests denied, by rule") : section.index("Requests warned")]
    assert denied.index("pss.privileged") < denied.index("images.allowed-source")
    assert "<td class='num'>2</td>" in denied  # pss.privileged denied twice
    assert "payments" in section and "EXC-3" in section
    empty = tmp_path / "empty.html"
    first, last = "2025-02-02", "2025-02-08"
    arguments = ["report", "--from", first, "--to", last, "--output", str(empty)]
    assert main([*arguments, "--db", decisions.url]) == 0
    assert "No admission decision was recorded in this period" in empty.read_text()


def test_csv_holds_every_decision_of_the_period(decisions: Database, tmp_path: Path) -> None:
    output = tmp_path / "export.zip"
    assert report(decisions, output, "csv", "--cluster", "prod") == 0
    with zipfile.ZipFile(output) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("admission_decisions.csv").decode())))
    assert [row["uid"] for row in rows] == ["a", "b", "c", "d", "e", "f", "gdry"]
    first = rows[0]
    assert first["rules_broken"] == "pss.privileged; images.allowed-source"
    assert (first["decision"], first["allowed"], first["cluster"]) == ("denied", "false", "prod")
    assert first["image_digests"] == DIGEST
    assert first["username"] == "system:serviceaccount:ci:deployer"
    assert rows[5]["exceptions"] == "EXC-3 (pss.privileged)"
    assert {row["ledger_seq"] for row in rows} == {"1", "2"}


def test_oscal_has_an_admission_observation_for_cc6_8(decisions: Database, tmp_path: Path) -> None:
    output = tmp_path / "results.oscal.json"
    assert report(decisions, output, "oscal", "--cluster", "prod") == 0
    document = json.loads(output.read_text())
    AssessmentResults.model_validate(document["assessment-results"])
    [result] = document["assessment-results"]["results"]
    [observation] = [o for o in result["observations"] if o["title"] == "admission-control"]
    props = {p["name"]: p["value"] for p in observation["props"]}
    assert props["admission-decisions"] == "7"
    assert props["admission-denied"] == "3"
    assert props["denied-by-pss.privileged"] == "2"
    [cc68] = [f for f in result["findings"] if f["target"]["target-id"] == "cc6.8"]
    assert {"observation-uuid": observation["uuid"]} in cc68["related-observations"]
