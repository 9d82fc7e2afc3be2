"""Transitions and heartbeats reach the store, and survive the database going away: they
wait, the failure is reported, and they are written once it is back. A real PostgreSQL
server is stopped and started again for this."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from agent_objects import cache_of, deployment
from sqlalchemy import select

from kubeproof import frameworks
from kubeproof.agent.record import AgentRecorder, transition_row
from kubeproof.agent.reevaluate import Plan, diff_verdicts, evaluate_plan
from kubeproof.agent.state import Change
from kubeproof.engine import Context
from kubeproof.inventory import Inventory
from kubeproof.store.db import open_store
from kubeproof.store.schema import AgentHeartbeatRow, AgentTransitionRow
from postgres import PostgresServer

CHECKS = frameworks.load("soc2").checks


def _context(inventory: Inventory) -> Context:
    return Context(inventory, cluster_name="test")


def _privileged_rows() -> list[dict[str, object]]:
    """The real transition rows of a Deployment made privileged."""
    before = deployment(version="1")
    after = deployment(privileged=True, version="2")
    cache = cache_of(after, kinds=("Deployment", "Namespace"))
    plan = Plan(frozenset({"pss.privileged"}))
    moved = diff_verdicts(plan, {}, evaluate_plan(plan, cache, CHECKS, _context), lambda s: True)
    now = datetime.now(UTC)
    change = Change("Deployment", before, after)
    return [transition_row(t, change, "test", "run-1", now) for t in moved]


def _restart(server: PostgresServer, *, stop: bool) -> None:
    data = str(server.root / "data")
    if stop:
        server.run("pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
        return
    options = f"-p {server.port} -c listen_addresses=127.0.0.1 -k {server.root}"
    log = str(server.root / "server.log")
    server.run("pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o", options, "start")


def test_rows_wait_while_the_database_is_down(postgres_server: PostgresServer) -> None:
    store = open_store(postgres_server.url(postgres_server.create_database()))
    log = io.StringIO()
    recorder = AgentRecorder(store, "test", "run-1", log=log)
    [row] = _privileged_rows()
    assert row["transition"] == "failing" and row["check_id"] == "pss.privileged"
    recorder.add_transitions([row])
    assert recorder.flush() and recorder.pending == 0

    _restart(postgres_server, stop=True)
    try:
        recorder.add_transitions(_privileged_rows())
        recorder.add_heartbeat("alive", 60, {"events": 3})
        assert not recorder.flush()
        assert recorder.pending == 2 and recorder.failures == 1
        assert "cannot record transitions" in log.getvalue()
        assert "2 rows waiting, will retry" in log.getvalue()
    finally:
        _restart(postgres_server, stop=False)

    assert recorder.flush() and recorder.pending == 0
    with store.reading() as session:
        transitions = session.execute(select(AgentTransitionRow.check_id)).scalars().all()
        beats = session.execute(select(AgentHeartbeatRow.counters)).scalars().all()
    assert transitions == ["pss.privileged", "pss.privileged"]
    assert beats == [{"events": 3}]
    store.close()


def test_too_many_waiting_rows_are_written_out_not_dropped(tmp_path: object) -> None:
    store = open_store(f"sqlite:///{tmp_path}/evidence.db")
    recorder = AgentRecorder(store, "test", "run-1", max_pending=1)
    recorder.add_transitions(_privileged_rows() * 2)
    assert recorder.overflowing
    out = io.StringIO()
    assert recorder.dump_pending(out) == 2
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["check_id"] for line in lines] == ["pss.privileged", "pss.privileged"]
    assert all("diff" in line for line in lines)
    store.close()
