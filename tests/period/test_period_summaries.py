"""The period report reads per-scan summaries (revision 0004): a store recorded before
them, then upgraded, reports exactly what the same store recorded with them does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from period_helpers import PERIOD, build_history
from sqlalchemy import create_engine, text

from databases import Database
from kubeproof.cli.main import main
from kubeproof.store.db import open_store, parse_url
from kubeproof.store.migrate import alembic_config


def json_report(database: Database, output: Path) -> dict[str, Any]:
    first, last = PERIOD
    arguments = ["report", "--from", first, "--to", last, "--format", "json"]
    assert main([*arguments, "--output", str(output), "--db", database.url]) == 0
    data: dict[str, Any] = json.loads(output.read_text())
    data.pop("generatedAt", None)
    return data


def downgrade_to(url: str, revision: str) -> None:
    from alembic import command

    engine = create_engine(parse_url(url))
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
    finally:
        engine.dispose()


def count(url: str, table: str) -> int:
    engine = create_engine(parse_url(url))
    try:
        with engine.connect() as connection:
            return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def test_an_upgraded_store_reports_what_it_reported_before(
    database: Database, tmp_path: Path
) -> None:
    store = open_store(database.url)
    try:
        build_history(store, tmp_path)
    finally:
        store.close()
    recorded = json_report(database, tmp_path / "recorded.json")
    assert count(database.url, "scan_subject_counts") > 0

    downgrade_to(database.url, "0003")
    upgraded = json_report(database, tmp_path / "upgraded.json")  # opening upgrades it

    assert count(database.url, "scan_subject_counts") > 0
    assert upgraded == recorded
    assert upgraded["workloads"] and sum(upgraded["counts"].values()) == count(
        database.url, "results"
    )
