"""Admission decisions as evidence, behind the real kube-apiserver: a pod the webhook
denies is recorded in the evidence store with the API server's own request uid and the
requesting user, chained in the ledger, and `kubeproof evidence verify` covers it (and
catches an edit of it)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from controlplane import ControlPlane, wait_for
from sqlalchemy import create_engine, text
from webhook_helpers import LABEL, call, pod, registered_webhooks, wait_for_webhook

from admission.reviews import privileged_pod_spec
from admission.webhook_tls import Tls, make_tls
from kubeproof.admission.decide import Decider
from kubeproof.admission.evidence import DecisionRecorder
from kubeproof.admission.policy import parse_policy
from kubeproof.admission.server import AdmissionServer, CertificateReloader, start_in_thread
from kubeproof.cli.main import main
from kubeproof.store.db import open_store, parse_url

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("webhook-evidence")]

RUN = uuid.uuid4().hex[:8]
NAMESPACE = f"kp-whe-{RUN}"
POLICY = {
    "apiVersion": "kubeproof.dev/v1alpha1",
    "kind": "AdmissionPolicy",
    "enforce": {"frameworks": ["pss-restricted"]},
}


@pytest.fixture(scope="module")
def recording(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AdmissionServer, DecisionRecorder, str]]:
    directory = tmp_path_factory.mktemp("webhook-evidence")
    tls: Tls = make_tls(directory)
    url = f"sqlite:///{directory / 'evidence.db'}"
    store = open_store(url)
    recorder = DecisionRecorder(
        store, cluster="test", webhook="it", flush_interval_s=0.2, log=lambda line: None
    ).start()
    server = AdmissionServer(
        ("127.0.0.1", 0),
        Decider(parse_policy(POLICY)),
        CertificateReloader(str(tls.cert), str(tls.key)),
        log=lambda line: None,
        evidence=recorder,
    )
    thread = start_in_thread(server)
    configurations = {f"kp-whe-{RUN}": (f"https://127.0.0.1:{server.port}/validate", RUN, "Fail")}
    try:
        with registered_webhooks(control_plane, tls, configurations, {NAMESPACE: {LABEL: RUN}}):
            probe = pod("probe", privileged_pod_spec())
            wait_for_webhook(control_plane, f"/api/v1/namespaces/{NAMESPACE}/pods", probe)
            yield server, recorder, url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        recorder.close()
        store.close()


def rows(url: str, statement: str) -> list[tuple[object, ...]]:
    engine = create_engine(parse_url(url))
    try:
        with engine.begin() as connection:
            result = connection.execute(text(statement))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def test_a_denied_pod_is_recorded_chained_and_verified(
    control_plane: ControlPlane,
    recording: tuple[AdmissionServer, DecisionRecorder, str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    _, recorder, url = recording
    reply = call(
        control_plane,
        "POST",
        f"/api/v1/namespaces/{NAMESPACE}/pods",
        pod("denied-evidence", privileged_pod_spec()),
    )
    assert reply.status == 403, reply.body
    select = (
        "SELECT uid, username, operation, kind, namespace, decision, allowed, mode, dry_run, "
        f"rules FROM admission_decisions WHERE name = 'denied-evidence' AND namespace = "
        f"'{NAMESPACE}'"
    )
    wait_for(lambda: bool(rows(url, select)), "the decision to be written")
    [(uid, user, operation, kind, namespace, answer, allowed, mode, dry_run, rules)] = rows(
        url, select
    )
    assert len(str(uid)) == 36  # the API server's request uid
    assert (user, operation, kind, namespace) == ("kubeproof-admin", "CREATE", "Pod", NAMESPACE)
    assert (answer, bool(allowed), mode, bool(dry_run)) == ("denied", False, "enforce", False)
    assert {"check": "pss.privileged", "outcome": "fail"} in json.loads(str(rules))
    assert recorder.state.failures == 0
    assert main(["evidence", "verify", "--db", url]) == 0, capsys.readouterr().err
    assert "entries verified" in capsys.readouterr().out

    # An edit of the recorded answer is caught.
    copy = tmp_path / "edited.db"
    copy.write_bytes(Path(url.removeprefix("sqlite:///")).read_bytes())
    edited = f"sqlite:///{copy}"
    rows(edited, f"UPDATE admission_decisions SET decision = 'allowed' WHERE uid = '{uid}'")
    assert main(["evidence", "verify", "--db", edited]) == 1
    assert "admission decisions of its batch were edited" in capsys.readouterr().err
