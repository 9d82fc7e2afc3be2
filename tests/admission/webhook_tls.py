"""A throwaway CA and a serving certificate for 127.0.0.1, made with the openssl CLI."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Tls:
    ca_cert: Path
    cert: Path
    key: Path


def _openssl(*arguments: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(
        ["openssl", *arguments], check=True, capture_output=True, input=stdin, timeout=60
    ).stdout


def _key(path: Path) -> None:
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path)
    )


def make_tls(directory: Path, common_name: str = "kubeproof-webhook") -> Tls:
    """CA + leaf for IP 127.0.0.1 and localhost, with key identifiers (strict checkers)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.crt"
    key, cert = directory / "tls.key", directory / "tls.crt"
    _key(ca_key)
    _openssl(
        "req", "-x509", "-new", "-key", str(ca_key), "-subj", "/CN=kubeproof-test-ca",
        "-days", "2", "-out", str(ca_cert),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    sign_leaf(directory, ca_cert, ca_key, key, cert, common_name)
    return Tls(ca_cert, cert, key)


def sign_leaf(
    directory: Path, ca_cert: Path, ca_key: Path, key: Path, cert: Path, common_name: str
) -> None:
    _key(key)
    extensions = directory / f"{common_name}.ext"
    extensions.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    request = _openssl("req", "-new", "-key", str(key), "-subj", f"/CN={common_name}")
    _openssl(
        "x509", "-req", "-CA", str(ca_cert), "-CAkey", str(ca_key), "-days", "2",
        "-out", str(cert), "-extfile", str(extensions), stdin=request,
    )  # fmt: skip


def certificate_subject(pem: bytes) -> str:
    return _openssl("x509", "-noout", "-subject", stdin=pem).decode().strip()
