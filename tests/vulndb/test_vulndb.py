"""`kubeproof vulndb update/status` against an OSV mirror on 127.0.0.1, matching by each
ecosystem's rules, and hostile archives (zip bombs, malformed records, not a zip)."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import zipfile
from pathlib import Path

import pytest

from kubeproof.cli.main import main
from kubeproof.images.osrelease import OperatingSystem
from kubeproof.images.packages import Package
from kubeproof.vulndb.match import match_packages
from kubeproof.vulndb.store import VulnDb, default_path
from vulndb.advisories import DEBIAN, PYPI
from vulndb.conftest import write_archive

BOOKWORM = OperatingSystem("debian", "12")


def update(source: str, *extra: str) -> int:
    return main(["vulndb", "update", "--source", source, *extra])


def test_update_and_status(osv_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert update(osv_server) == 0
    output = capsys.readouterr().out
    assert "Debian: 5 advisories loaded" in output
    assert "Alpine: 2 advisories loaded" in output
    assert "PyPI: 5 advisories loaded" in output
    assert "Go: 2 advisories loaded" in output
    assert "npm: 2 advisories loaded" in output
    assert default_path().is_file()  # under $XDG_CACHE_HOME

    assert main(["vulndb", "status", "-o", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    counts = {e["ecosystem"]: e["advisories"] for e in status["ecosystems"]}
    assert counts == {"Alpine": 2, "Debian": 5, "PyPI": 5, "Go": 2, "npm": 2}
    assert all(0 <= e["age_seconds"] < 600 for e in status["ecosystems"])
    assert main(["vulndb", "status"]) == 0
    assert "advisories  updated" in capsys.readouterr().out


def packages_found(
    osv_server: str, os: OperatingSystem | None, *packages: Package
) -> dict[tuple[str, str], str | None]:
    assert update(osv_server) == 0
    with VulnDb(default_path()) as db:
        report = match_packages(db, os, packages)
    assert not report.unchecked, report.unchecked
    return {
        (f.package.name, f.package.version, f.advisory_id): f.fixed_version for f in report.findings
    }


def test_debian_matches_source_package_and_release(osv_server: str) -> None:
    found = packages_found(
        osv_server,
        BOOKWORM,
        Package("deb", "libc6", "2.36-9+deb12u1", "amd64", "glibc", "2.36-9+deb12u1"),
        Package("deb", "libssl3", "3.0.11-1~deb12u2", "amd64", "openssl", "3.0.11-1~deb12u2"),
        Package("deb", "tar", "1.34+dfsg-1.2+deb12u1", "amd64", "tar", "1.34+dfsg-1.2+deb12u1"),
        Package("deb", "libc-bin", "2.36-9+deb12u14", "amd64", "glibc", "2.36-9+deb12u14"),
    )
    assert found == {
        ("libc6", "2.36-9+deb12u1", "DSA-5514-1"): "2.36-9+deb12u3",
        # 3.0.11-1~deb12u2 is the fix of DSA-5532-1 but older than DSA-5764-1's; the
        # bullseye DLA never applies to bookworm.
        ("libssl3", "3.0.11-1~deb12u2", "DSA-5764-1"): "3.0.14-1~deb12u2",
        ("tar", "1.34+dfsg-1.2+deb12u1", "DEBIAN-CVE-2005-2541"): None,
    }


def test_pypi_ranges_last_affected_versions_and_withdrawn(osv_server: str) -> None:
    found = packages_found(
        osv_server,
        None,
        Package("pypi", "requests", "2.31.0"),
        Package("pypi", "py", "1.11.0"),
        Package("pypi", "urllib3", "1.26.3"),
        Package("pypi", "urllib3", "1.26.4"),
        Package("pypi", "requests", "2.2.0", location="old"),
    )
    assert found == {
        ("requests", "2.31.0", "GHSA-9wx4-h78v-vm56"): "2.32.0",
        ("requests", "2.2.0", "GHSA-9wx4-h78v-vm56"): "2.32.0",  # before GHSA-j8r2's range
        ("py", "1.11.0", "PYSEC-2022-42969"): None,
        ("urllib3", "1.26.3", "PYSEC-2021-59"): None,
    }


def test_alpine_matches_origin_and_minor_release(osv_server: str) -> None:
    alpine = OperatingSystem("alpine", "3.19.1")
    found = packages_found(
        osv_server,
        alpine,
        Package(
            "apk", "musl-utils", "1.2.4_git20230717-r4", "x86_64", "musl", "1.2.4_git20230717-r4"
        ),
        Package("apk", "libssl3", "3.1.3-r0", "x86_64", "openssl", "3.1.3-r0"),
    )
    assert found == {
        ("musl-utils", "1.2.4_git20230717-r4", "ALPINE-CVE-2023-4911"): "1.2.4_git20230717-r5"
    }


def test_packages_without_data_are_reported_unchecked(osv_server: str) -> None:
    assert update(osv_server, "--ecosystem", "PyPI") == 0
    with VulnDb(default_path()) as db:
        report = match_packages(
            db,
            BOOKWORM,
            (
                Package("deb", "libc6", "2.36-9", source_name="glibc", source_version="2.36-9"),
                Package("deb", "x", "1", source_name="x", source_version="1"),
                Package("pypi", "requests", "not-a-version!"),
            ),
        )
    reasons = sorted(why for _, why in report.unchecked)
    assert reasons[:2] == ["no Debian data in the vulnerability database"] * 2
    assert reasons[2].startswith("version not comparable")
    assert report.checked == 0


def test_hostile_archive_rejects_bad_records_and_keeps_the_rest(
    osv_root: Path, osv_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write_archive(
        osv_root / "PyPI" / "all.zip",
        PYPI,
        {
            "bomb.json": b"0" * (12 << 20),  # under the record limit, but 1000:1
            "huge.json": b" " * (17 << 20),
            "truncated.json": b'{"id": "GHSA-x", "affected": [',
            "list.json": b"[1, 2]",
            "deep.json": b"[" * 100_000,
            "no-id.json": json.dumps({"affected": []}).encode(),
            "bad-affected.json": json.dumps(
                {"id": "GHSA-bad", "affected": [{"package": 3}]}
            ).encode(),
            "bad-events.json": json.dumps(
                {
                    "id": "GHSA-ev",
                    "affected": [
                        {
                            "package": {"ecosystem": "PyPI", "name": "x"},
                            "ranges": [{"type": "ECOSYSTEM", "events": [{"fixed": 1}]}],
                        }
                    ],
                }
            ).encode(),
        },
    )
    (osv_root / "Alpine" / "all.zip").write_bytes(b"this is not a zip")
    assert update(osv_server) == 2
    captured = capsys.readouterr()
    assert "PyPI: 5 advisories loaded, 8 rejected" in captured.out
    assert "deep.json: nested too deeply" in captured.err
    assert "bomb.json: compression ratio of a zip bomb" in captured.err
    assert "huge.json: 17825792 bytes, over the 16777216 byte limit" in captured.err
    assert "truncated.json: not valid JSON" in captured.err
    assert "bad-events.json: GHSA-ev: affected[0].ranges[0] has malformed events" in captured.err
    assert "Alpine: FAILED" in captured.err and "not a zip archive" in captured.err
    assert "Debian: 5 advisories loaded" in captured.out
    assert "Traceback" not in captured.err


def test_failed_download_keeps_previous_data(
    osv_root: Path, osv_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert update(osv_server) == 0
    (osv_root / "Debian" / "all.zip").unlink()
    write_archive(osv_root / "Debian" / "broken.zip", DEBIAN)
    data = (osv_root / "Debian" / "broken.zip").read_bytes()
    (osv_root / "Debian" / "all.zip").write_bytes(data[: len(data) // 2])  # truncated
    assert update(osv_server, "--ecosystem", "Debian") == 2
    assert "Debian: FAILED" in capsys.readouterr().err
    with VulnDb(default_path()) as db:
        assert {s.source: s.advisories for s in db.sources()}["Debian"] == 5
    (osv_root / "Debian" / "all.zip").unlink()
    assert update(osv_server, "--ecosystem", "Debian") == 2
    assert "HTTP 404" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (b"garbage\r\n\r\n", "BadStatusLine"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\nPK", "cut short"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", "HTTPException"),
    ],
    ids=["not-http", "cut-short", "too-many-headers"],
)
def test_a_malformed_http_answer_fails_its_ecosystem_by_name(
    capsys: pytest.CaptureFixture[str], answer: bytes, reason: str
) -> None:
    # Raw bytes on a socket: no HTTP server can be made to answer this way.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def answer_once() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(answer)

        server = threading.Thread(target=answer_once)
        server.start()
        code = update(f"http://127.0.0.1:{port}", "--ecosystem", "Debian")
        server.join()
    err = capsys.readouterr().err
    assert code == 2
    assert "Debian: FAILED" in err and f"127.0.0.1:{port}/Debian/all.zip: " in err
    assert reason in err, err
    assert "Traceback" not in err


def test_missing_or_corrupt_database_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["vulndb", "status", "--vulndb", str(tmp_path / "none.db")]) == 2
    assert "run `kubeproof vulndb update` first" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"not sqlite" * 100)
    assert main(["vulndb", "status", "--vulndb", str(corrupt)]) == 2
    assert "not a readable vulnerability database" in capsys.readouterr().err
    for other in (tmp_path / "empty.yaml", tmp_path / "other.sqlite3"):
        if other.suffix == ".yaml":
            other.touch()
        else:
            sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
        before = other.read_bytes()
        assert main(["vulndb", "status", "--vulndb", str(other)]) == 2
        assert f"{other}: not a kubeproof vulnerability database" in capsys.readouterr().err
        assert other.read_bytes() == before  # a reader wrote nothing into it


def test_zip_member_claiming_a_small_size_is_bounded(tmp_path: Path) -> None:
    from kubeproof.vulndb.download import ArchiveRecords

    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ok.json", json.dumps(DEBIAN[0]))
    records = ArchiveRecords(path, "a.zip")
    assert [r["id"] for r in records] == ["DSA-5514-1"] and records.rejected == 0
