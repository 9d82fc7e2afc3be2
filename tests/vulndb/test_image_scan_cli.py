"""`kubeproof image scan` end to end: an image assembled from this machine's real dpkg
database plus packages with known advisories, the OSV data served from 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from images.builders import Blobs, file, layer_tar
from kubeproof.cli.main import main

SITE = "usr/lib/python3/dist-packages"
STATUS_D = "var/lib/dpkg/status.d"


@pytest.fixture
def vulnerable_layout(tmp_path: Path) -> Path:
    real_status = Path("/var/lib/dpkg/status")
    if not real_status.is_file():
        pytest.skip("this machine has no dpkg status database")
    blobs = Blobs()
    top = blobs.image(
        [
            layer_tar(
                file(
                    "etc/os-release",
                    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
                ),
                file("var/lib/dpkg/status", real_status.read_bytes()),
            ),
            layer_tar(
                file(
                    f"{STATUS_D}/libc6",
                    "Package: libc6\nVersion: 2.36-9+deb12u1\nArchitecture: amd64\nSource: glibc\n",
                ),
                file(
                    f"{SITE}/requests-2.31.0.dist-info/METADATA",
                    "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\n",
                ),
            ),
        ]
    )
    return blobs.write_layout(tmp_path / "layout", {"v1": top})


def test_scan_json_table_and_sbom(
    vulnerable_layout: Path, osv_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["vulndb", "update", "--source", osv_server]) == 0
    capsys.readouterr()
    sbom = tmp_path / "sbom.json"
    reference = f"oci:{vulnerable_layout}:v1"
    assert main(["image", "scan", reference, "-o", "json", "--sbom", str(sbom), "--offline"]) == 1
    report = json.loads(capsys.readouterr().out)
    found = {
        (v["package"], v["installed_version"], v["id"], v["fixed_version"], v["severity"])
        for v in report["vulnerabilities"]
    }
    assert ("libc6", "2.36-9+deb12u1", "DSA-5514-1", "2.36-9+deb12u3", "unknown") in found
    assert ("requests", "2.31.0", "GHSA-9wx4-h78v-vm56", "2.32.0", "medium") in found
    ghsa = next(v for v in report["vulnerabilities"] if v["id"] == "GHSA-9wx4-h78v-vm56")
    # The score computed from the record's vector, not the database's MODERATE.
    assert ghsa["cvss_score"] == 5.6 and ghsa["severity_source"] == "CVSS 3.1"
    assert ghsa["cvss_vector"] == "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:H/I:H/A:N"
    assert ghsa["status"] == "fail" and ghsa["vex"] is None
    tar = next(v for v in report["vulnerabilities"] if v["id"] == "DEBIAN-CVE-2005-2541")
    assert (tar["severity"], tar["severity_source"], tar["severity_label"]) == (
        "low",
        "ecosystem_specific.urgency",
        "unimportant",
    )
    assert report["image"]["os"] == {"id": "debian", "version_id": "12"}
    assert {d["ecosystem"] for d in report["database"]} == {"Debian", "Alpine", "PyPI", "Go", "npm"}
    assert report["unchecked"] == [] and report["checked"] == report["packages"]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(sbom.read_text()) is None
    written = json.loads(sbom.read_text())
    rated = {v["id"]: v["ratings"][0] for v in written["vulnerabilities"]}
    assert rated["GHSA-9wx4-h78v-vm56"] == {
        "severity": "medium",
        "source": {"name": "CVSS 3.1"},
        "score": 5.6,
        "method": "CVSSv31",
        "vector": "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:H/I:H/A:N",
    }
    refs = {c["bom-ref"] for c in written["components"]}
    assert all(v["affects"][0]["ref"] in refs for v in written["vulnerabilities"])

    assert main(["image", "scan", reference]) == 1
    table = capsys.readouterr().out
    assert "DSA-5514-1" in table and "2.36-9+deb12u3" in table
    assert "vulnerability database: Alpine, Debian, Go, PyPI, npm, updated 0 min ago" in table


def test_scan_errors_are_clear(
    tmp_path: Path, osv_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["vulndb", "update", "--source", osv_server, "--ecosystem", "PyPI"]) == 0
    assert main(["image", "scan", f"oci:{tmp_path}/missing"]) == 2
    assert "not an OCI image layout" in capsys.readouterr().err
    assert main(["image", "scan", "docker-archive:", "--offline"]) == 2
    assert "without a path" in capsys.readouterr().err
    assert main(["image", "scan", "oci:x", "--platform", "linux"]) == 2
    assert "--platform" in capsys.readouterr().err


def test_scan_without_database_says_how_to_get_one(
    vulnerable_layout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["image", "scan", f"oci:{vulnerable_layout}:v1"]) == 2
    assert "run `kubeproof vulndb update` first" in capsys.readouterr().err


def test_sbom_command(vulnerable_layout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["image", "sbom", f"oci:{vulnerable_layout}:v1"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert "pkg:pypi/requests@2.31.0" in {c["purl"] for c in document["components"]}


def _vex(path: Path, digest: str, statements: list[dict[str, object]]) -> Path:
    path.write_text(
        json.dumps(
            {
                "@context": "https://openvex.dev/ns/v0.2.0",
                "@id": "https://example.com/vex/shop-api",
                "author": "Platform Security",
                "timestamp": "2024-06-01T10:00:00Z",
                "version": 1,
                "statements": statements,
            }
        )
    )
    return path


def test_scan_with_vex_excepts_never_hides(
    vulnerable_layout: Path, osv_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["vulndb", "update", "--source", osv_server]) == 0
    capsys.readouterr()
    reference = f"oci:{vulnerable_layout}:v1"
    assert main(["image", "scan", reference, "-o", "json"]) == 1
    before = json.loads(capsys.readouterr().out)
    digest = before["image"]["digest"]
    image_purl = "pkg:oci/layout@" + digest  # read from a file: the digest names it
    vex = _vex(
        tmp_path / "shop.vex.json",
        digest,
        [
            {
                "vulnerability": {"name": vulnerability["id"]},
                "products": [{"@id": image_purl, "subcomponents": [{"@id": "pkg:pypi/requests"}]}]
                if vulnerability["package"] == "requests"
                else [{"@id": image_purl}],
                "status": "not_affected",
                "justification": "vulnerable_code_not_in_execute_path",
            }
            for vulnerability in before["vulnerabilities"]
        ],
    )
    assert main(["image", "scan", reference, "-o", "json", "--vex", str(vex)]) == 0
    after = json.loads(capsys.readouterr().out)
    # Every finding is still listed, each excepted with who said so and why.
    assert len(after["vulnerabilities"]) == len(before["vulnerabilities"]) > 0
    for vulnerability in after["vulnerabilities"]:
        assert vulnerability["status"] == "excepted"
        assert vulnerability["vex"]["author"] == "Platform Security"
        assert vulnerability["vex"]["justification"] == "vulnerable_code_not_in_execute_path"
        assert "Platform Security" in vulnerability["reason"]
    sbom = tmp_path / "with-vex.cdx.json"
    assert main(["image", "scan", reference, "--vex", str(vex), "--sbom", str(sbom)]) == 0
    table = capsys.readouterr().out
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(sbom.read_text()) is None
    analyses = [v["analysis"] for v in json.loads(sbom.read_text())["vulnerabilities"]]
    assert analyses and all(
        a["state"] == "not_affected" and a["justification"] == "code_not_reachable"
        for a in analyses
    )
    assert "excepted" in table and "VEX not_affected" in table

    broken = tmp_path / "broken.vex.json"
    broken.write_text('{"@context": "https://openvex.dev/ns", "statements": []}')
    assert main(["image", "scan", reference, "--vex", str(broken)]) == 2
    error = capsys.readouterr().err
    assert "broken.vex.json" in error and "author is required" in error
