"""A real Kubernetes control plane for integration tests.

`ControlPlane` runs scripts/controlplane/build.sh (a no-op once the binaries are
cached) and up.sh, which start etcd, kube-apiserver and kube-controller-manager
on 127.0.0.1 with no kubelet: pods are stored but stay Pending. It talks to the
API with the standard library only, so these tests do not depend on the
product code that they check.

Use the fixture from a conftest.py (one cluster per test session)::

    from controlplane import control_plane_fixture
    control_plane = control_plane_fixture()
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "controlplane"
# The first build compiles Kubernetes: about 10 minutes on 2 cores.
BUILD_TIMEOUT_S = 45 * 60
Identity = Literal["admin", "scanner"]
T = TypeVar("T")


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or stopped."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager in `directory`."""

    def __init__(self, directory: Path, apiserver_flags: Sequence[str] = ()) -> None:
        self.directory = directory
        # Extra kube-apiserver flags (paths must not hold spaces): a second control plane
        # with, say, an audit webhook backend. The shared fixture passes none.
        self.apiserver_flags = tuple(apiserver_flags)
        self._env: dict[str, str] = {}
        self._contexts: dict[Identity, ssl.SSLContext] = {}

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        _run([str(SCRIPTS / "build.sh")], "build.sh", BUILD_TIMEOUT_S)
        try:
            extra = {"KUBEPROOF_APISERVER_FLAGS": " ".join(self.apiserver_flags)}
            _run([str(SCRIPTS / "up.sh"), str(self.directory)], "up.sh", 120, extra)
        except ControlPlaneError as error:
            # up.sh stops what it started but keeps the logs: quote them, then clean up.
            raise ControlPlaneError(f"{error}\n{self._log_tails()}") from None
        finally:
            if not (self.directory / "cluster.env").exists():
                self.stop()
        env_file = self.directory / "cluster.env"
        self._env = dict(
            line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line
        )

    def stop(self) -> None:
        _run([str(SCRIPTS / "down.sh"), str(self.directory)], "down.sh", 60)

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where things are ----------------------------------------------------

    @property
    def server(self) -> str:
        """The API server's URL, https://127.0.0.1:PORT."""
        return self._env["SERVER"]

    @property
    def ca_file(self) -> Path:
        return Path(self._env["CA_FILE"])

    @property
    def admin_kubeconfig(self) -> Path:
        """Credentials of a member of system:masters."""
        return Path(self._env["ADMIN_KUBECONFIG"])

    @property
    def scanner_kubeconfig(self) -> Path:
        """Credentials of user kubeproof-scanner, bound to deploy/rbac's read-only ClusterRole."""
        return Path(self._env["SCANNER_KUBECONFIG"])

    @property
    def audit_log(self) -> Path:
        return Path(self._env["AUDIT_LOG"])

    @property
    def kubernetes_version(self) -> str:
        return self._env["K8S_VERSION"]

    # -- talking to the API --------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        identity: Identity = "admin",
        content_type: str = "application/json",
    ) -> Response:
        """One API call; HTTP errors are returned, not raised, so tests can assert on 403."""
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(self.server + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, context=self._context(identity), timeout=30) as r:
                return Response(r.status, r.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, error.read())

    def get(self, path: str, *, identity: Identity = "admin") -> Response:
        return self.request("GET", path, identity=identity)

    def create(self, path: str, obj: dict[str, Any], *, identity: Identity = "admin") -> Any:
        """POST `obj` to the collection at `path` and return the stored object."""
        response = self.request("POST", path, obj, identity=identity)
        if response.status != 201:
            raise AssertionError(f"POST {path}: {response.status} {response.body[:500]!r}")
        return response.json()

    def _context(self, identity: Identity) -> ssl.SSLContext:
        if identity not in self._contexts:
            context = ssl.create_default_context(cafile=self._env["CA_FILE"])
            prefix = identity.upper()
            context.load_cert_chain(self._env[f"{prefix}_CERT"], self._env[f"{prefix}_KEY"])
            self._contexts[identity] = context
        return self._contexts[identity]

    def _log_tails(self, lines: int = 20) -> str:
        tails = []
        for log in sorted(self.directory.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            tails.append(f"--- {log.name} (last {lines} lines)\n" + "\n".join(tail))
        return "\n".join(tails)


def wait_for(probe: Callable[[], T | None], what: str, timeout_s: float = 60.0) -> T:
    """Poll `probe` until it returns something other than None or False."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.2)


def control_plane_fixture(scope: Literal["session", "package", "module"] = "session") -> Any:
    """Make a pytest fixture that yields a running ControlPlane and stops it afterwards."""

    @pytest.fixture(scope=scope)
    def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
        with ControlPlane(tmp_path_factory.mktemp("controlplane")) as running:
            yield running

    return control_plane


def _run(
    command: list[str], name: str, timeout_s: float, env: dict[str, str] | None = None
) -> None:
    try:
        subprocess.run(
            command,
            env={**os.environ, **env} if env else None,
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.CalledProcessError as error:
        raise ControlPlaneError(f"{name} failed ({error.returncode}):\n{error.stderr}") from None
    except subprocess.TimeoutExpired:
        raise ControlPlaneError(f"{name} did not finish within {timeout_s:.0f} s") from None
