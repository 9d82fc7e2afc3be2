"""`kubeproof webhook serve --signing-key`: the ledger entries of recorded decisions are
signed like those of every other recording command, and a bad key stops it before it
listens."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from admission.conftest import POLICY, client_context
from admission.reviews import privileged_pod_spec, review, workload
from admission.webhook_tls import Tls
from kubeproof.cli.main import main
from paths import ROOT


def _serve(url: str, policy: Path, tls: Tls, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("KUBEPROOF_SIGNING_KEY", None)
    return subprocess.Popen(
        [sys.executable, "-m", "kubeproof", "webhook", "serve", "--policy", str(policy),
         "--tls-cert", str(tls.cert), "--tls-key", str(tls.key), "--port", "0",
         "--db", url, *extra],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def _decide_once(process: subprocess.Popen[str], tls: Tls) -> None:
    """One review answered, then SIGTERM: the decision is flushed on shutdown."""
    try:
        assert process.stderr is not None
        line = ""
        while "listening on https://127.0.0.1:" not in line:
            line = process.stderr.readline()
            assert line, "the webhook stopped before listening"
        port = int(line.rsplit(":", 1)[1].split("/")[0])
        conn = http.client.HTTPSConnection(
            "127.0.0.1", port, context=client_context(tls.ca_cert), timeout=10
        )
        body = json.dumps(review(workload("Pod", "p", privileged_pod_spec())))
        conn.request("POST", "/validate", body, {"Content-Type": "application/json"})
        assert json.loads(conn.getresponse().read())["response"]["allowed"] is False
        conn.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(POLICY))
    return path


def test_recorded_decisions_are_signed_with_the_signing_key(
    tmp_path: Path, tls: Tls, policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private = tmp_path / "signing.key"
    assert main(["evidence", "keygen", "--output", str(private)]) == 0
    signed, unsigned = f"sqlite:///{tmp_path / 'signed.db'}", f"sqlite:///{tmp_path / 'plain.db'}"
    _decide_once(_serve(signed, policy, tls, "--signing-key", str(private)), tls)
    _decide_once(_serve(unsigned, policy, tls), tls)
    capsys.readouterr()
    public_key = ["--public-key", f"{private}.pub"]
    assert main(["evidence", "verify", "--db", signed, *public_key]) == 0
    assert main(["evidence", "verify", "--db", unsigned, *public_key]) != 0


def test_a_bad_signing_key_stops_it_before_it_listens(
    tmp_path: Path, tls: Tls, policy: Path
) -> None:
    key = tmp_path / "not-a.key"
    key.write_text("secret-looking-content\n")
    process = _serve(f"sqlite:///{tmp_path / 'e.db'}", policy, tls, "--signing-key", str(key))
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2, stderr
    assert str(key) in stderr and "secret-looking-content" not in stderr
    assert "Traceback" not in stderr and "listening" not in stderr
