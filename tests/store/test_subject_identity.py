"""Subjects keep their Kubernetes UID and labels (revision 0005): the OSCAL report names
subjects by UID, and label-selector exceptions cover the findings whose subject's labels
they select. An older store upgrades and still verifies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine
from store_helpers import T0, deployment, query, record, replica_set_and_pod
from trestle.oscal.assessment_results import AssessmentResults

from databases import Database
from kubeproof.cli.main import main
from kubeproof.store.db import open_store, parse_url
from kubeproof.store.exceptions import NewException, add_exception
from kubeproof.store.migrate import alembic_config
from kubeproof.store.schema import Base

UID = "0b3c5d7e-1f2a-4b6c-8d9e-0a1b2c3d4e5f"
PERIOD = ["--from", "2026-01-05", "--to", "2026-01-11"]


def labelled(name: str, uid: str, labels: dict[str, str]) -> str:
    """A privileged Deployment with labels of its own (and its pod template's app label)."""
    text = deployment(name, uid=uid)
    own = ", ".join(f"{k}: {json.dumps(v)}" for k, v in labels.items())
    return text.replace(f"uid: {uid}}}", f"uid: {uid}, labels: {{{own}}}}}", 1)


def subjects(url: str) -> dict[str, tuple[Any, Any]]:
    rows = query(url, "SELECT kind, name, uid, labels FROM subjects WHERE kind = 'Deployment'")
    return {name: (uid, _labels(labels)) for _, name, uid, labels in rows}


def _labels(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@pytest.fixture
def store_url(database: Database) -> Iterator[str]:
    """storefront (team=payments) and checkout (team=search), both failing pss.privileged."""
    store = open_store(database.url)
    try:
        record(
            store,
            labelled("storefront", UID, {"team": "payments"}),
            labelled("checkout", "c-2", {"team": "search"}),
            day=0,
        )
    finally:
        store.close()
    yield database.url


def test_subjects_keep_the_uid_and_labels_a_selector_matches(store_url: str) -> None:
    stored = subjects(store_url)
    assert stored["storefront"] == (UID, {"team": "payments", "app": "storefront"})
    assert stored["checkout"] == ("c-2", {"team": "search", "app": "checkout"})


def test_a_rollout_keeps_the_workloads_uid_and_a_later_scan_updates_labels(
    database: Database,
) -> None:
    store = open_store(database.url)
    try:
        record(store, labelled("storefront", UID, {"team": "payments"}), day=0)
        # The cluster shows the Deployment's ReplicaSet and pod too: the pod's results fold
        # into the Deployment, whose UID stays the one stored.
        record(
            store,
            labelled("storefront", UID, {"team": "checkout"}),
            replica_set_and_pod("storefront", "a1", deployment_uid=UID),
            day=1,
        )
    finally:
        store.close()
    assert subjects(database.url)["storefront"] == (
        UID,
        {"team": "checkout", "app": "storefront"},
    )


def test_credential_like_label_values_are_redacted(database: Database) -> None:
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    store = open_store(database.url)
    try:
        record(store, labelled("storefront", UID, {"github-token": token}), day=0)
    finally:
        store.close()
    _, labels = subjects(database.url)["storefront"]
    assert labels["github-token"] != token and labels["app"] == "storefront"
    assert token not in database.stored_text()


def _selector_exception(url: str, selector: str | dict[str, Any]) -> None:
    new = NewException(
        checks=["pss.privileged"],
        owner="payments-team",
        reason="the card reader needs the device",
        expires=date(2026, 3, 1),
        subjects=[],
        namespaces=[],
        selector=selector,
    )
    store = open_store(url)
    try:
        add_exception(store, new, now=datetime(2026, 1, 6, tzinfo=UTC), max_days=365)
    finally:
        store.close()


def _report(url: str, tmp_path: Path, form: str) -> Any:
    output = tmp_path / f"report.{form}.json"
    assert main(["report", *PERIOD, "--format", form, "--db", url, "--output", str(output)]) == 0
    return json.loads(output.read_text())


def test_a_label_selector_exception_covers_the_findings_it_selects(
    store_url: str, tmp_path: Path
) -> None:
    _selector_exception(store_url, "team=payments")
    data = _report(store_url, tmp_path, "json")
    cc61 = next(c for c in data["criteria"] if c["id"] == "CC6.1")
    privileged = {
        f["subject"].split("[")[0]: f for f in cc61["findings"] if f["check"] == "pss.privileged"
    }
    assert privileged["Deployment/shop/storefront"]["acceptedBy"] == ["EXC-1"]
    assert privileged["Deployment/shop/checkout"]["acceptedBy"] == []
    assert privileged["Deployment/shop/storefront"]["uid"] == UID
    assert privileged["Deployment/shop/storefront"]["labels"]["team"] == "payments"
    [exception] = cc61["exceptions"]
    assert exception["scope"] == "label selector team=payments"

    document = _report(store_url, tmp_path, "oscal")
    AssessmentResults.model_validate(document["assessment-results"])
    risks = document["assessment-results"]["results"][0]["risks"]
    status = {
        r["title"].split(" on ")[1].split("[")[0]: r["status"]
        for r in risks
        if r["title"].startswith("pss.privileged on ")
    }
    assert status["Deployment/shop/storefront"] == "risk-accepted"
    assert status["Deployment/shop/checkout"] == "open"


def test_a_selector_that_matches_nothing_covers_nothing(store_url: str, tmp_path: Path) -> None:
    expression = {"key": "team", "operator": "In", "values": ["billing"]}
    _selector_exception(store_url, {"matchExpressions": [expression]})
    data = _report(store_url, tmp_path, "json")
    cc61 = next(c for c in data["criteria"] if c["id"] == "CC6.1")
    assert cc61["exceptions"] and all(f["acceptedBy"] == [] for f in cc61["findings"])
    assert cc61["exceptions"][0]["scope"] == "label selector team In (billing)"


def test_subjects_without_known_labels_are_not_taken_as_selected(
    database: Database, tmp_path: Path
) -> None:
    store = open_store(database.url)
    try:
        record(store, deployment("storefront", uid=UID), day=0)
    finally:
        store.close()
    # Known labels only come from a scan: without them the selector cannot be judged.
    from store_helpers import execute

    execute(database.url, "UPDATE subjects SET labels = NULL")
    _selector_exception(database.url, "app=storefront")
    data = _report(database.url, tmp_path, "json")
    cc61 = next(c for c in data["criteria"] if c["id"] == "CC6.1")
    assert [f["acceptedBy"] for f in cc61["findings"] if f["check"] == "pss.privileged"] == [[]]


def test_oscal_names_subjects_by_their_kubernetes_uid(store_url: str, tmp_path: Path) -> None:
    document = _report(store_url, tmp_path, "oscal")
    model = AssessmentResults.model_validate(document["assessment-results"])
    [result] = model.results
    raw = document["assessment-results"]["results"][0]
    items = {i["description"]: i for i in raw["local-definitions"]["inventory-items"]}
    storefront = items["Deployment/shop/storefront in cluster prod"]
    checkout = items["Deployment/shop/checkout in cluster prod"]
    # A UID that is a valid UUID is the item's uuid; any UID is a prop.
    assert storefront["uuid"] == UID
    props = {(p["name"], p["value"]) for p in storefront["props"]}
    assert ("kubernetes-uid", UID) in props and ("kubernetes-label", "team=payments") in props
    assert checkout["uuid"] != "c-2" and ("kubernetes-uid", "c-2") in {
        (p["name"], p["value"]) for p in checkout["props"]
    }
    referenced = {s.subject_uuid for o in result.observations or [] for s in o.subjects or []}
    assert UID in referenced


def _downgrade_to(url: str, revision: str) -> None:
    engine = create_engine(parse_url(url))
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
    finally:
        engine.dispose()


def test_a_store_from_revision_0004_upgrades_and_still_verifies(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(database.url)
    try:
        record(store, deployment(privileged=True), day=0)
        record(store, deployment(privileged=False), day=1)
    finally:
        store.close()
    _downgrade_to(database.url, "0004")
    assert query(database.url, "SELECT version_num FROM alembic_version") == [("0004",)]

    key = tmp_path / "signing.key"
    assert main(["evidence", "keygen", "--output", str(key)]) == 0
    store = open_store(database.url, signing_key=str(key))  # upgrades
    try:
        record(store, labelled("storefront", UID, {"team": "payments"}), day=2)
    finally:
        store.close()
    capsys.readouterr()
    code = main(["evidence", "verify", "--db", database.url, "--public-key", f"{key}.pub"])
    out = capsys.readouterr().out
    assert code == 0 and "3 entries verified" in out and "1 entries signed" in out
    assert subjects(database.url)["storefront"][0] == UID
    # The migrated schema is the one the models describe.
    engine = create_engine(parse_url(database.url))
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    mine = [d for d in differences if any(n in str(d) for n in ("signature", "key_id", "uid"))]
    assert mine == []


def test_scans_keep_their_time_of_recording(store_url: str) -> None:
    [(started,)] = query(store_url, "SELECT min(started_at) FROM scans")
    assert str(started).startswith(T0.strftime("%Y-%m-%d"))
