"""`kubeproof scan PATH --images`: the images manifests name (by tag or digest) are pulled
from a real registry on 127.0.0.1, matched against OSV data served from 127.0.0.1, and
reported and recorded (SQLite and PostgreSQL) with the other results; what cannot be read
is not evaluated, and --offline reads only the SBOM cache."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from databases import Database
from images.builders import Blobs, file, layer_tar
from images.registry_server import Registry
from kubeproof.cli.main import main
from kubeproof.reports.json import load_schema

pytestmark = pytest.mark.integration
SITE = "usr/lib/python3/dist-packages"
REQUESTS_ADVISORY = "GHSA-9wx4-h78v-vm56"


@pytest.fixture(scope="module")
def pushed(registry: Registry) -> dict[str, str]:
    """Tag references of a vulnerable and a clean image, and the vulnerable one's digest."""
    blobs = Blobs()
    api = blobs.image(
        [
            layer_tar(
                file(
                    f"{SITE}/requests-2.31.0.dist-info/METADATA",
                    "Name: requests\nVersion: 2.31.0\n",
                )
            )
        ]
    )
    registry.push("shop/api", blobs, "1.0", api)
    blobs = Blobs()
    clean = blobs.image(
        [
            layer_tar(
                file(f"{SITE}/attrs-23.1.0.dist-info/METADATA", "Name: attrs\nVersion: 23.1.0\n")
            )
        ]
    )
    registry.push("shop/web", blobs, "2.0", clean)
    return {
        "api": f"{registry.host}/shop/api:1.0",
        "api-digest": f"{registry.host}/shop/api@{api['digest']}",
        "web": f"{registry.host}/shop/web:2.0",
    }


def _manifests(tmp_path: Path, images: dict[str, str]) -> Path:
    def deployment(name: str, containers: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"template": {"spec": {"containers": containers}}},
        }

    documents = [
        deployment(
            "api",
            [
                {"name": "api", "image": images["api"]},
                # A manifest must never make kubeproof read the machine's own files.
                {"name": "local", "image": "oci:/etc"},
            ],
        ),
        deployment("web", [{"name": "web", "image": images["web"]}]),
        deployment("pinned", [{"name": "api", "image": images["api-digest"]}]),
    ]
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    return path


def _scan(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, dict[str, Any], str]:
    capsys.readouterr()
    code = main(["scan", *arguments, "--images", "-o", "json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def _image_results(report: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (r["check"], r["subject"]["name"], r["subject"].get("container", "")): r
        for r in report["results"]
        if r["check"].startswith("image.")
    }


def test_manifest_images_are_judged_and_recorded(
    pushed: dict[str, str],
    osv_server: str,
    tmp_path: Path,
    database: Database,
    capsys: pytest.CaptureFixture[str],
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    assert main(["vulndb", "update", "--source", osv_server, "--ecosystem", "PyPI"]) == 0
    manifests = _manifests(tmp_path, pushed)
    code, report, err = _scan(capsys, str(manifests), "--db", database.url)
    assert code == 1, err  # vulnerabilities fail the scan like any failing check
    jsonschema.Draft202012Validator(load_schema()).validate(report)
    results = _image_results(report)
    vulnerable = {k: r for k, r in results.items() if r["status"] == "fail"}
    assert set(vulnerable) == {
        ("image.vulnerability-medium", name, f"api#pypi/requests#{REQUESTS_ADVISORY}")
        for name in ("api", "pinned")
    }
    tagged = vulnerable[
        ("image.vulnerability-medium", "api", f"api#pypi/requests#{REQUESTS_ADVISORY}")
    ]
    assert tagged["location"]["file"] == str(manifests)
    assert tagged["path"] == "spec.template.spec.containers[0].image"
    assert tagged["details"]["images"][0]["reference"] == pushed["api"]
    assert results[("image.vulnerabilities", "web", "web")]["status"] == "pass"
    local = results[("image.vulnerabilities", "api", "local")]
    assert local["status"] == "not_evaluated"
    assert "not a registry image reference" in local["reason"]
    assert report["scan"]["images"] == {"read": 3, "unreadable": 1}
    assert "recorded scan" in err

    capsys.readouterr()
    assert main(["findings", "--db", database.url, "-o", "json"]) == 0
    findings = json.loads(capsys.readouterr().out)["findings"]
    image_findings = {
        (f["check"], f["subject"]["name"], f["subject"]["container"])
        for f in findings
        if f["check"].startswith("image.")
    }
    assert image_findings == {
        ("image.vulnerability-medium", name, f"api#pypi/requests#{REQUESTS_ADVISORY}")
        for name in ("api", "pinned")
    }

    # The period report shows the image evidence under the criterion it evidences.
    today = datetime.now(UTC).date().isoformat()
    period_report = tmp_path / "period.json"
    arguments = ["report", "--from", today, "--to", today, "--format", "json"]
    assert main([*arguments, "--output", str(period_report), "--db", database.url]) == 0
    criteria = {c["id"]: c for c in json.loads(period_report.read_text())["criteria"]}
    cc66 = {c["id"]: c["counts"] for c in criteria["CC6.6"]["checks"]}
    assert cc66["image.vulnerability-medium"]["fail"] == 2
    assert cc66["image.vulnerabilities"]["pass"] >= 1
    assert cc66["image.vulnerabilities"]["not_evaluated"] == 1


def test_offline_reads_only_the_cache(
    pushed: dict[str, str], osv_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["vulndb", "update", "--source", osv_server, "--ecosystem", "PyPI"]) == 0
    manifests = _manifests(tmp_path, pushed)
    _scan(capsys, str(manifests))  # fills the SBOM cache
    code, report, err = _scan(capsys, str(manifests), "--offline")
    assert code == 1, err
    results = _image_results(report)
    assert report["scan"]["vulnerabilityDatabase"]["offline"] is True
    # By digest, from the cache; by tag, it would take the registry: never a pass.
    assert (
        "image.vulnerability-medium",
        "pinned",
        f"api#pypi/requests#{REQUESTS_ADVISORY}",
    ) in results
    web = results[("image.vulnerabilities", "web", "web")]
    assert web["status"] == "not_evaluated" and "--offline" in web["reason"]


def test_image_options_need_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert main(["scan", str(path), "--offline", "--platform", "linux/arm64"]) == 2
    assert "--offline, --platform only apply with --images" in capsys.readouterr().err
    assert main(["scan", str(path), "--images", "--platform", "linux"]) == 2
    assert "--platform" in capsys.readouterr().err


def test_no_database_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert main(["scan", str(path), "--images"]) == 2
    assert "run `kubeproof vulndb update` first" in capsys.readouterr().err


def test_an_exception_names_one_advisory(
    pushed: dict[str, str], osv_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["vulndb", "update", "--source", osv_server, "--ecosystem", "PyPI"]) == 0
    accepted = {
        "exceptions": [
            {
                "id": "EXC-REQUESTS",
                "checks": ["image.vulnerability-*"],
                "subjects": [f"Deployment/shop/pinned[*#{REQUESTS_ADVISORY}]"],
                "owner": "sre@example.com",
                "reason": "not reachable: the service sends no requests with verify=False",
                "expires": "2099-01-01",
            }
        ]
    }
    exceptions = tmp_path / "exceptions.yaml"
    exceptions.write_text(yaml.safe_dump(accepted))
    _, report, err = _scan(
        capsys, str(_manifests(tmp_path, pushed)), "--exceptions", str(exceptions),
        "--exception-max-days", "100000",
    )  # fmt: skip
    results = _image_results(report)
    key = f"api#pypi/requests#{REQUESTS_ADVISORY}"
    assert results[("image.vulnerability-medium", "pinned", key)]["status"] == "excepted", err
    assert results[("image.vulnerability-medium", "api", key)]["status"] == "fail"


def test_an_openvex_statement_excepts_the_advisory_in_every_workload(
    pushed: dict[str, str], osv_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["vulndb", "update", "--source", osv_server, "--ecosystem", "PyPI"]) == 0
    vex = tmp_path / "shop.vex.json"
    vex.write_text(
        json.dumps(
            {
                "@context": "https://openvex.dev/ns/v0.2.0",
                "@id": "https://example.com/vex/shop",
                "author": "Platform Security",
                "timestamp": "2026-06-01T10:00:00Z",
                "version": 1,
                "statements": [
                    {
                        "vulnerability": {"name": REQUESTS_ADVISORY},
                        "products": [{"@id": "pkg:pypi/requests@2.31.0"}],
                        "status": "not_affected",
                        "justification": "vulnerable_code_not_in_execute_path",
                    }
                ],
            }
        )
    )
    manifests = str(_manifests(tmp_path, pushed))
    _, report, err = _scan(capsys, manifests, "--vex", str(vex))
    results = _image_results(report)
    key = f"api#pypi/requests#{REQUESTS_ADVISORY}"
    for workload in ("api", "pinned"):
        result = results[("image.vulnerability-medium", workload, key)]
        assert result["status"] == "excepted", err  # listed, never hidden
        assert result["details"]["vex"]["justification"] == "vulnerable_code_not_in_execute_path"
        assert "Platform Security" in result["reason"]

    broken = tmp_path / "broken.vex.json"
    broken.write_text("{not json")
    capsys.readouterr()
    assert main(["scan", manifests, "--images", "--vex", str(broken)]) == 2
    assert "broken.vex.json" in capsys.readouterr().err
    assert main(["scan", manifests, "--vex", str(vex)]) == 2  # --vex needs --images
