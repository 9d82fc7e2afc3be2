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
    assert ("libc6", "2.36-9+deb12u1", "DSA-5514-1", "2.36-9+deb12u3", "UNKNOWN") in found
    assert (
        "requests",
        "2.31.0",
        "GHSA-9wx4-h78v-vm56",
        "2.32.0",
        "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:H/I:H/A:N",
    ) in found
    assert report["image"]["os"] == {"id": "debian", "version_id": "12"}
    assert {d["ecosystem"] for d in report["database"]} == {"Debian", "Alpine", "PyPI", "Go", "npm"}
    assert report["unchecked"] == [] and report["checked"] == report["packages"]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(sbom.read_text()) is None

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
