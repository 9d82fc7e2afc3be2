"""Go and npm packages matched end to end (a real Go binary and node_modules in an OCI
layout, OSV archives served from 127.0.0.1), and `kubeproof image rescan`: an advisory
published after an image was scanned is reported once as newly disclosed, with dates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from images.builders import Blobs, executable, file, layer_tar
from images.gobuild import go_binary
from kubeproof.cli.main import main
from kubeproof.images.packages import GOLANG, Package
from kubeproof.vulndb.match import match_packages
from kubeproof.vulndb.store import VulnDb, default_path
from vulndb.advisories import GO, NPM
from vulndb.conftest import write_archive

APP = "srv/app"


def _package_json(name: str, version: str) -> str:
    return json.dumps({"name": name, "version": version})


def _layout(tmp_path: Path, name: str, *extra_files: tuple[str, bytes | str]) -> str:
    blobs = Blobs()
    entries = [file("etc/os-release", 'ID=debian\nVERSION_ID="12"\n')]
    entries += [file(path, data) for path, data in extra_files]
    top = blobs.image([layer_tar(*entries), layer_tar(executable("usr/bin/app", go_binary().data))])
    return f"oci:{blobs.write_layout(tmp_path / name, {'v1': top})}:v1"


@pytest.fixture
def app_image(tmp_path: Path) -> str:
    lock = {
        "lockfileVersion": 3,
        "packages": {"node_modules/semver": {"version": "7.5.1"}},
    }
    return _layout(
        tmp_path,
        "app",
        (f"{APP}/node_modules/lodash/package.json", _package_json("lodash", "4.17.20")),
        (f"{APP}/package-lock.json", json.dumps(lock)),
    )


def _scan(reference: str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["image", "scan", reference, "-o", "json"]) == 1
    return dict(json.loads(capsys.readouterr().out))


def test_go_and_npm_vulnerabilities(
    app_image: str, osv_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["vulndb", "update", "--source", osv_server]) == 0
    report = _scan(app_image, capsys)
    found = {
        (v["package"], v["installed_version"], v["id"], v["fixed_version"], v["ecosystem"])
        for v in report["vulnerabilities"]  # type: ignore[attr-defined]
    }
    assert found == {
        ("golang.org/x/text", "v0.3.7", "GO-2022-1059", "0.3.8", "Go"),
        ("lodash", "4.17.20", "GHSA-35jh-r3h4-6jhm", "4.17.21", "npm"),
        ("semver", "7.5.1", "GHSA-c2qf-rxjj-qqgw", "7.5.2", "npm"),
    }
    # Every package, the Go standard library included, was checked.
    assert report["unchecked"] == [] and report["checked"] == report["packages"] == 4


def test_go_stdlib_ranges(osv_server: str) -> None:
    assert main(["vulndb", "update", "--source", osv_server, "--ecosystem", "Go"]) == 0
    packages = tuple(Package(GOLANG, "stdlib", v) for v in ("1.20.9", "1.21.2", "1.21.3", "1.22.0"))
    with VulnDb(default_path()) as db:
        report = match_packages(db, None, packages)
    assert {(f.package.version, f.fixed_version) for f in report.findings} == {
        ("1.20.9", "1.20.10"),
        ("1.21.2", "1.21.3"),
    }
    assert report.checked == 4


def test_rescan_reports_newly_disclosed_once(
    app_image: str,
    osv_root: Path,
    osv_server: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Day one: the Go data does not have GO-2022-1059 yet.
    write_archive(osv_root / "Go" / "all.zip", [r for r in GO if r["id"] != "GO-2022-1059"])
    assert main(["vulndb", "update", "--source", osv_server]) == 0
    before = datetime.now(UTC)
    first = _scan(app_image, capsys)
    assert "GO-2022-1059" not in {v["id"] for v in first["vulnerabilities"]}  # type: ignore[attr-defined]
    # An image only ever SBOM'd (never matched): its first match is a baseline, not news.
    other = _layout(
        tmp_path,
        "other",
        (f"{APP}/node_modules/lodash/package.json", _package_json("lodash", "4.17.19")),
    )
    assert main(["image", "sbom", other]) == 0

    # The advisory is published; the database is updated; nothing is pulled again.
    write_archive(osv_root / "Go" / "all.zip", GO)
    write_archive(osv_root / "npm" / "all.zip", NPM)
    capsys.readouterr()
    assert main(["vulndb", "update", "--source", osv_server]) == 0
    capsys.readouterr()
    assert main(["image", "rescan", "-o", "json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 2 and result["baselines"] == 1
    assert [
        (d["id"], d["package"], d["installed_version"], d["image"])
        for d in result["newly_disclosed"]
    ] == [("GO-2022-1059", "golang.org/x/text", "v0.3.7", app_image)]
    disclosure = result["newly_disclosed"][0]
    assert disclosure["published"] == "2022-10-11T17:16:13Z"
    first_seen = datetime.fromisoformat(disclosure["first_seen"])
    assert before <= first_seen <= datetime.now(UTC) + timedelta(seconds=1)

    # Reported once: a second rescan has nothing new, and the first-seen date stays.
    assert main(["image", "rescan"]) == 0
    assert "no newly disclosed vulnerabilities" in capsys.readouterr().out
    report = _scan(app_image, capsys)
    seen = {v["id"]: v["first_seen"] for v in report["vulnerabilities"]}  # type: ignore[attr-defined]
    assert seen["GO-2022-1059"] == disclosure["first_seen"]
    # --since-update: every image was matched after the last update, so none is re-matched.
    assert main(["image", "rescan", "--since-update", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped_current"] == 2


def test_rescan_table_and_unreadable_cache(
    app_image: str, osv_root: Path, osv_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write_archive(osv_root / "npm" / "all.zip", [])
    assert main(["vulndb", "update", "--source", osv_server]) == 0
    _scan(app_image, capsys)
    cache = Path(default_path()).parent / "sbom"
    (cache / ("sha256:" + "0" * 64 + ".json")).write_text("{damaged")
    write_archive(osv_root / "npm" / "all.zip", NPM)
    assert main(["vulndb", "update", "--source", osv_server]) == 0
    capsys.readouterr()
    assert main(["image", "rescan"]) == 1
    captured = capsys.readouterr()
    assert "GHSA-35jh-r3h4-6jhm" in captured.out and "2021-05-06" in captured.out
    assert "GHSA-c2qf-rxjj-qqgw" in captured.out
    assert "1 cached SBOMs could not be read" in captured.err


def test_rescan_without_database(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["image", "rescan"]) == 2
    assert "run `kubeproof vulndb update` first" in capsys.readouterr().err


def test_rescan_with_vex_lists_excepted_disclosures(
    app_image: str,
    osv_root: Path,
    osv_server: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_archive(osv_root / "npm" / "all.zip", [])
    assert main(["vulndb", "update", "--source", osv_server]) == 0
    digest = _scan(app_image, capsys)["image"]["digest"]  # type: ignore[index]
    write_archive(osv_root / "npm" / "all.zip", NPM)
    assert main(["vulndb", "update", "--source", osv_server]) == 0
    vex = tmp_path / "app.openvex.json"
    vex.write_text(
        json.dumps(
            {
                "@context": "https://openvex.dev/ns/v0.2.0",
                "author": "App Team",
                "timestamp": "2024-06-01T00:00:00Z",
                "statements": [
                    {
                        "vulnerability": {"name": advisory["id"]},
                        "products": [
                            {"@id": f"pkg:oci/app@{digest}", "subcomponents": ["pkg:npm/lodash"]}
                        ],
                        "status": "not_affected",
                        "justification": "vulnerable_code_not_present",
                    }
                    for advisory in NPM
                ],
            }
        )
    )
    capsys.readouterr()
    code = main(["image", "rescan", "-o", "json", "--vex", str(vex)])
    disclosed = json.loads(capsys.readouterr().out)["newly_disclosed"]
    # Exit 1 only for disclosures that still fail.
    assert code == (1 if any(d["status"] == "fail" for d in disclosed) else 0)
    by_package = {(d["package"], d["status"]) for d in disclosed}
    # lodash's disclosures are excepted by the statement, still listed; others still fail.
    assert ("lodash", "excepted") in by_package
    assert all(
        d["status"] == ("excepted" if d["package"] == "lodash" else "fail") for d in disclosed
    )
    excepted = next(d for d in disclosed if d["status"] == "excepted")
    assert excepted["vex"]["author"] == "App Team" and "App Team" in excepted["reason"]
