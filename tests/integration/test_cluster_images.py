"""`kubeproof scan --cluster --images` end to end: a real API server (pod status set through
the pods/status subresource, as a kubelet would, to say which digest each container runs), a
real registry on 127.0.0.1 that demands a password given only through an imagePullSecret,
and OSV archives served from 127.0.0.1. Vulnerabilities attach to the Deployment and
container, the evidence store records them, an image that cannot be read is not evaluated,
and an advisory published later for the unchanged image is marked newly disclosed."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from controlplane import ControlPlane, wait_for

from images.builders import Blobs, file, layer_tar
from images.registry_server import REGISTRY_BINARY, Registry, running_registry
from kubeproof.cli.main import main
from kubeproof.reports.json import load_schema
from vulndb.advisories import NPM, PYPI
from vulndb.conftest import write_archive

pytestmark = pytest.mark.integration

SITE = "usr/lib/python3/dist-packages"
USER = "puller"
PASSWORD = "kp-pull-" + uuid.uuid4().hex
LODASH_ADVISORY = "GHSA-35jh-r3h4-6jhm"  # published 2021-05-06, added to the data later


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    bcrypt = pytest.importorskip("bcrypt")
    if not Path(REGISTRY_BINARY).exists():
        pytest.skip("docker-registry is not installed (scripts/registry.sh)")
    directory = tmp_path_factory.mktemp("registry")
    htpasswd = directory / "htpasswd"
    htpasswd.write_bytes(f"{USER}:".encode() + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)))
    with running_registry(directory, htpasswd) as server:
        server.authorization = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        yield server


def _push(registry: Registry, repository: str, *files: tuple[str, str]) -> str:
    blobs = Blobs()
    top = blobs.image([layer_tar(*(file(path, data) for path, data in files))])
    registry.push(repository, blobs, "1", top)
    return f"{registry.host}/{repository}@{top['digest']}"


@pytest.fixture(scope="module")
def images(registry: Registry) -> dict[str, str]:
    """Pinned references (REPOSITORY@sha256:...) of the images the pods run."""
    api = _push(
        registry,
        "shop/api",
        (f"{SITE}/requests-2.31.0.dist-info/METADATA", "Name: requests\nVersion: 2.31.0\n"),
        ("srv/app/node_modules/lodash/package.json", '{"name": "lodash", "version": "4.17.20"}'),
    )
    clean = _push(
        registry,
        "shop/tools",
        (f"{SITE}/attrs-23.1.0.dist-info/METADATA", "Name: attrs\nVersion: 23.1.0\n"),
    )
    missing = f"{registry.host}/shop/missing@sha256:" + "0" * 64
    return {"api": api, "clean": clean, "missing": missing}


@pytest.fixture
def osv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """(archive root, URL) of an OSV mirror on 127.0.0.1; npm starts without the lodash
    advisory. The caches and the database live under tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    monkeypatch.delenv("KUBEPROOF_VULNDB", raising=False)
    monkeypatch.delenv("KUBEPROOF_DB", raising=False)
    root = tmp_path / "osv"
    write_archive(root / "PyPI" / "all.zip", PYPI)
    write_archive(root / "npm" / "all.zip", [r for r in NPM if r["id"] != LODASH_ADVISORY])
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def _update(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["vulndb", "update", "--source", url, "--ecosystem", "PyPI", "--ecosystem", "npm"])
        == 0
    )
    capsys.readouterr()


def _deployment(name: str, containers: list[dict[str, Any]], **pod: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": containers, **pod}},
        },
    }


def _set_running(
    control_plane: ControlPlane, namespace: str, app: str, ids: dict[str, Any]
) -> None:
    """What a kubelet reports: the pod runs, each container with the digest it pulled."""
    pods_path = f"/api/v1/namespaces/{namespace}/pods"

    def pod() -> dict[str, Any] | None:
        items = control_plane.get(f"{pods_path}?labelSelector=app%3D{app}").json()["items"]
        return items[0] if items else None

    current = wait_for(pod, f"a pod of {app}")

    def status(name: str, image_id: str) -> dict[str, Any]:
        return {"name": name, "image": image_id.split("@")[0] + ":1", "imageID": image_id,
                "ready": True, "restartCount": 0, "state": {"running": {}}}  # fmt: skip

    current["status"] = {
        "phase": "Running",
        "containerStatuses": [status(n, i) for n, i in ids.get("containers", {}).items()],
        "initContainerStatuses": [status(n, i) for n, i in ids.get("init", {}).items()],
    }
    name = current["metadata"]["name"]
    response = control_plane.request("PUT", f"{pods_path}/{name}/status", current)
    assert response.status == 200, response.body[:500]


@pytest.fixture(scope="module")
def namespace(control_plane: ControlPlane, registry: Registry, images: dict[str, str]) -> str:
    """Deployment `api` (container api: vulnerable image; init container migrate: a clean
    one), pulled with the imagePullSecret `regcred`; Deployment `broken` runs a digest the
    registry does not have."""
    name = f"kp-images-{uuid.uuid4().hex[:8]}"
    control_plane.create("/api/v1/namespaces", {"metadata": {"name": name}})
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    config = json.dumps({"auths": {registry.host: {"auth": auth}}}).encode()
    control_plane.create(
        f"/api/v1/namespaces/{name}/secrets",
        {
            "metadata": {"name": "regcred"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(config).decode()},
        },
    )
    deployments = f"/apis/apps/v1/namespaces/{name}/deployments"
    tag = lambda key: images[key].split("@")[0] + ":1"  # noqa: E731 - what a manifest names
    control_plane.create(
        deployments,
        _deployment(
            "api",
            [{"name": "api", "image": tag("api")}],
            initContainers=[{"name": "migrate", "image": tag("clean")}],
            imagePullSecrets=[{"name": "regcred"}],
        ),
    )
    control_plane.create(
        deployments,
        _deployment("broken", [{"name": "app", "image": tag("missing")}],
                    imagePullSecrets=[{"name": "regcred"}]),
    )  # fmt: skip
    _set_running(
        control_plane,
        name,
        "api",
        {
            "containers": {"api": f"docker-pullable://{images['api']}"},
            "init": {"migrate": images["clean"]},
        },
    )
    _set_running(control_plane, name, "broken", {"containers": {"app": images["missing"]}})
    return name


def _scan(
    control_plane: ControlPlane,
    kubeconfig: Path,
    database: Path,
    capsys: pytest.CaptureFixture[str],
) -> tuple[dict[str, Any], str]:
    capsys.readouterr()
    code = main(["scan", "--cluster", "--kubeconfig", str(kubeconfig), "--images", "-o", "json",
                 "--fail-on", "none", "--db", str(database)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert PASSWORD not in captured.out + captured.err
    report: dict[str, Any] = json.loads(captured.out)
    return report, captured.err


def _ours(report: dict[str, Any], namespace: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Image results in the namespace, by (check, workload, container)."""
    return {
        (r["check"], r["subject"]["name"], r["subject"].get("container", "")): r
        for r in report["results"]
        if r["check"].startswith("image.") and r["subject"]["namespace"] == namespace
    }


def test_images_running_in_the_cluster(
    control_plane: ControlPlane,
    namespace: str,
    images: dict[str, str],
    osv: tuple[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    root, url = osv
    database = tmp_path / "evidence.db"
    _update(url, capsys)
    started = datetime.now(UTC)
    report, err = _scan(control_plane, control_plane.admin_kubeconfig, database, capsys)
    jsonschema.Draft202012Validator(load_schema()).validate(report)
    assert "vulnerability database updated" in err
    results = _ours(report, namespace)
    requests = results[
        ("image.vulnerability-medium", "api", "api#pypi/requests#GHSA-9wx4-h78v-vm56")
    ]
    assert requests["status"] == "fail" and requests["severity"] == "medium"
    assert requests["subject"]["kind"] == "Deployment" and requests["criteria"] == ["CC6.6"]
    assert "CC6.6" in requests["groups"]
    details = requests["details"]
    assert details["container"] == "api"
    assert (details["installed_version"], details["fixed_version"]) == ("2.31.0", "2.32.0")
    assert details["advisory"] == "GHSA-9wx4-h78v-vm56" and details["newly_disclosed"] is False
    # Pulled by the digest the pod runs (the runtime's docker-pullable:// prefix dropped).
    assert details["images"] == [{"reference": images["api"], "digest": images["api"][-71:]}]
    # The init container runs a clean image; the broken Deployment's digest is not there.
    assert results[("image.vulnerabilities", "api", "migrate")]["status"] == "pass"
    broken = results[("image.vulnerabilities", "broken", "app")]
    assert broken["status"] == "not_evaluated" and "404" in broken["reason"]
    assert not [k for k in results if k[0] == "image.newly-disclosed"]
    assert not [k for k in results if "lodash" in k[2]]  # the data does not know it yet
    facts = report["scan"]["vulnerabilityDatabase"]
    assert {e["ecosystem"] for e in facts["ecosystems"]} == {"PyPI", "npm"}
    assert 0 <= facts["ageSeconds"] < 600 and facts["offline"] is False
    assert report["scan"]["images"]["unreadable"] >= 1
    cc66 = next(g for g in report["summary"]["groups"] if g["id"] == "CC6.6")
    assert cc66["verdict"] == "failing"

    findings = _findings(database, namespace, capsys)
    recorded = findings[
        ("image.vulnerability-medium", "api", "api#pypi/requests#GHSA-9wx4-h78v-vm56")
    ]
    assert recorded["state"] == "open" and recorded["severity"] == "medium"
    assert recorded["due"] is not None  # the remediation deadline runs from first seen
    assert not [k for k in findings if k[0] == "image.vulnerabilities"]  # never failing
    assert PASSWORD.encode() not in database.read_bytes()

    # The advisory for lodash is published; the database is updated; the image is unchanged.
    write_archive(root / "npm" / "all.zip", NPM)
    _update(url, capsys)
    for _ in range(2):  # and it stays marked while the image keeps the package
        report, _ = _scan(control_plane, control_plane.admin_kubeconfig, database, capsys)
        results = _ours(report, namespace)
        key = ("image.newly-disclosed", "api", f"api#npm/lodash#{LODASH_ADVISORY}")
        newly = results[key]
        assert newly["status"] == "fail" and newly["criteria"] == ["CC7.1"]
        assert newly["details"]["published"] == "2021-05-06T16:05:51Z"
        first_seen = datetime.fromisoformat(newly["details"]["first_seen"])
        assert first_seen > started
        high = results[("image.vulnerability-high", "api", f"api#npm/lodash#{LODASH_ADVISORY}")]
        assert high["details"]["newly_disclosed"] is True and high["severity"] == "high"
        # What was there from the start is not news.
        assert not [k for k in results if k[0] == "image.newly-disclosed" and "requests" in k[2]]
    findings = _findings(database, namespace, capsys)
    assert key in findings and findings[key]["state"] == "open"

    # The container now runs a rebuilt (clean) image: its vulnerability findings resolve.
    _set_running(
        control_plane, namespace, "api",
        {"containers": {"api": images["clean"]}, "init": {"migrate": images["clean"]}},
    )  # fmt: skip
    report, _ = _scan(control_plane, control_plane.admin_kubeconfig, database, capsys)
    assert _ours(report, namespace)[("image.vulnerabilities", "api", "api")]["status"] == "pass"
    findings = _findings(database, namespace, capsys)
    assert {f["state"] for k, f in findings.items() if k[2].startswith("api#")} == {"resolved"}
    # The pull Secret's password is in no file kubeproof wrote (SBOM cache, vulnerability
    # database, evidence store).
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len(written) > 3 and not [p for p in written if _secrets_in(p.read_bytes())]


def _secrets_in(data: bytes) -> set[bytes]:
    """The secret forms found in `data` (plain password, base64 user:password)."""
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode())
    return {secret for secret in (PASSWORD.encode(), encoded) if secret in data}


def _findings(
    database: Path, namespace: str, capsys: pytest.CaptureFixture[str]
) -> dict[tuple[str, str, str], dict[str, Any]]:
    capsys.readouterr()
    assert main(["findings", "--db", str(database), "-o", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)["findings"]
    return {
        (f["check"], f["subject"]["name"], f["subject"]["container"] or ""): f
        for f in listed
        if f["subject"]["namespace"] == namespace
    }


def test_scanner_without_secret_access_falls_back_and_says_so(
    control_plane: ControlPlane,
    namespace: str,
    osv: tuple[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _update(osv[1], capsys)
    report, err = _scan(control_plane, control_plane.scanner_kubeconfig, tmp_path / "e.db", capsys)
    assert f"cannot read imagePullSecret {namespace}/regcred" in err
    results = _ours(report, namespace)
    api = results[("image.vulnerabilities", "api", "api")]
    # Without the Secret there are no credentials: never a pass.
    assert api["status"] == "not_evaluated" and "needs credentials" in api["reason"]
