"""Bearer-token authentication against a real registry configured for token auth: the
registry sends a `WWW-Authenticate: Bearer realm=...` challenge, a token service on
127.0.0.1 (written here: the registry does not ship one) issues RS256 JWTs signed with
openssl for the certificate the registry trusts, and the client follows the challenge."""

from __future__ import annotations

import base64
import http.server
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from images.builders import Blobs, file, layer_tar
from images.registry_server import REGISTRY_BINARY, Registry, running_registry
from kubeproof.images.reader import read_image
from kubeproof.images.registry import RegistryError

pytestmark = pytest.mark.integration
SERVICE, ISSUER = "kp-registry", "kp-token-issuer"
USER, PASSWORD = "reader", "token-Pa55word"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenIssuer:
    key: Path
    certificate_der: bytes
    requests: list[tuple[str, bool]]  # (scope, authenticated)

    def token(self, subject: str, repository: str, actions: list[str]) -> str:
        header = {
            "typ": "JWT",
            "alg": "RS256",
            "x5c": [base64.b64encode(self.certificate_der).decode()],
        }
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": [{"type": "repository", "name": repository, "actions": actions}]
            if actions
            else [],
        }
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(),
            capture_output=True,
            check=True,
        ).stdout
        return f"{signing_input}.{_b64url(signature)}"


def _handler(issuer: TokenIssuer) -> type[http.server.BaseHTTPRequestHandler]:
    class TokenService(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
            scope = query.get("scope", "")
            expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            authenticated = self.headers.get("Authorization") == expected
            issuer.requests.append((scope, authenticated))
            if self.headers.get("Authorization") and not authenticated:
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            _, repository, actions = ([*scope.split(":"), "", "", ""])[:3]
            granted = actions.split(",") if authenticated else []
            body = json.dumps(
                {"token": issuer.token(USER if authenticated else "", repository, granted)}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return TokenService


@pytest.fixture(scope="module")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Registry, TokenIssuer]]:
    if not Path(REGISTRY_BINARY).exists() or shutil.which("openssl") is None:
        pytest.skip("needs docker-registry (scripts/registry.sh) and openssl")
    directory = tmp_path_factory.mktemp("token-registry")
    key, certificate = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
            "-days",
            "1",
            "-subj",
            "/CN=kp-token",
        ],
        check=True,
        capture_output=True,
    )
    der = subprocess.run(
        ["openssl", "x509", "-in", str(certificate), "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    issuer = TokenIssuer(key, der, [])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(issuer))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    realm = f"http://127.0.0.1:{server.server_address[1]}/token"
    auth = (
        f"auth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n"
        f"    issuer: {ISSUER}\n    rootcertbundle: {certificate}\n"
    )
    try:
        with running_registry(directory, token_auth=auth) as registry:
            registry.authorization = "Bearer " + issuer.token(USER, "kp/private", ["pull", "push"])
            blobs = Blobs()
            top = blobs.image(
                [
                    layer_tar(
                        file("etc/alpine-release", "3.20.3\n"),
                        file("lib/apk/db/installed", "P:zlib\nV:1.3.1-r1\no:zlib\n"),
                    )
                ]
            )
            registry.push("kp/private", blobs, "1", top)
            registry.authorization = None
            yield registry, issuer
    finally:
        server.shutdown()
        server.server_close()


def _config(directory: Path, host: str, password: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{USER}:{password}".encode()).decode()
    (directory / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return directory / "config.json"


def test_bearer_token_flow_with_credentials(
    token_registry: tuple[Registry, TokenIssuer], tmp_path: Path
) -> None:
    registry, issuer = token_registry
    issuer.requests.clear()
    config = _config(tmp_path, registry.host, PASSWORD)
    image = read_image(f"{registry.host}/kp/private:1", registry_config=config)
    assert [(p.name, p.version) for p in image.packages] == [("zlib", "1.3.1-r1")]
    assert issuer.requests == [("repository:kp/private:pull", True)]  # one token, reused


def test_bearer_token_refused_and_anonymous(
    token_registry: tuple[Registry, TokenIssuer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, _ = token_registry
    wrong = _config(tmp_path / "wrong", registry.host, "wrong-password")
    with pytest.raises(
        RegistryError, match="token service refused the configured credentials"
    ) as error:
        read_image(f"{registry.host}/kp/private:1", registry_config=wrong)
    assert "wrong-password" not in str(error.value)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "none"))
    with pytest.raises(RegistryError, match="401 unauthorized"):
        read_image(f"{registry.host}/kp/private:1")  # anonymous token grants nothing
