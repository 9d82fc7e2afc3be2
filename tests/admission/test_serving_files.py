"""The serving certificate, key and client CA: loaded by OpenSSL from their paths, but
each is first checked to be a regular file of a sane size, so that a missing, piped or
endless file is named and refused rather than waited on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from admission.webhook_tls import Tls
from kubeproof.serving import TlsError, tls_context


def test_the_files_load_as_a_mutual_tls_context(tls: Tls) -> None:
    context = tls_context(str(tls.cert), str(tls.key), str(tls.ca_cert))
    assert context.verify_mode.name == "CERT_REQUIRED"


@pytest.mark.parametrize("broken", ["cert", "key", "client CA"])
@pytest.mark.parametrize("kind", ["missing", "pipe", "device", "not PEM"])
def test_an_unusable_file_is_named(tmp_path: Path, tls: Tls, broken: str, kind: str) -> None:
    path = tmp_path / "broken.pem"
    if kind == "pipe":
        os.mkfifo(path)  # no writer: reading it would wait for ever
    elif kind == "device":
        path = Path("/dev/zero")
    elif kind == "not PEM":
        path.write_bytes(b"\x30\x82\x01")
    files = {"cert": str(tls.cert), "key": str(tls.key), "client CA": str(tls.ca_cert)}
    files[broken] = str(path)
    with pytest.raises(TlsError) as raised:
        tls_context(files["cert"], files["key"], files["client CA"])
    assert str(path) in str(raised.value)
