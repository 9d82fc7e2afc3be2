"""Ubuntu, Red Hat, Rocky Linux, AlmaLinux, Maven and crates.io advisories: loaded by
`kubeproof vulndb update` from archives served on 127.0.0.1 (OSV's bulk format, built from
real advisories' facts), indexed under the release names images map to, and decided by
each ecosystem's version rules for packages read from real inputs (an rpm database written
by rpm, Debian's guava jar inside a Spring Boot style jar, a cargo-auditable binary)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from images.builders import Blobs, executable, file, layer_tar
from images.realinputs import auditable_binary, spring_boot_jar
from kubeproof.cli.main import main
from kubeproof.images.osrelease import OperatingSystem
from kubeproof.images.packages import DEB, MAVEN, RPM, Package
from kubeproof.images.reader import read_image
from kubeproof.vulndb.ecosystems import index_ecosystem, release_ecosystem, unmatched_reason
from kubeproof.vulndb.osv import compile_entry
from kubeproof.vulndb.store import VulnDb, default_path
from kubeproof.vulndb.versions import InvalidVersion, version_key
from vulndb.conftest import write_archive


def _record(record_id: str, affected: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "schema_version": "1.6.0",
        "id": record_id,
        "modified": "2025-07-02T00:00:00Z",
        "published": "2025-07-01T00:00:00Z",
        "affected": affected,
        **extra,
    }


def _affected(
    ecosystem: str, name: str, *events: dict[str, str], kind: str = "ECOSYSTEM"
) -> dict[str, Any]:
    return {
        "package": {"ecosystem": ecosystem, "name": name},
        "ranges": [{"type": kind, "events": list(events)}],
    }


SUDO_FIX = {"fixed": "0:1.9.5p2-10.el9_6.1"}  # RHSA-2025:9978, CVE-2025-32462
ARCHIVES = {
    "Red Hat": [
        _record(
            "RHSA-2025:9978",
            [
                _affected(
                    "Red Hat:enterprise_linux:9::appstream", "sudo", {"introduced": "0"}, SUDO_FIX
                ),
                _affected(
                    "Red Hat:enterprise_linux:9::baseos", "sudo", {"introduced": "0"}, SUDO_FIX
                ),
                # An extended-support stream: other builds, not matched against images.
                _affected(
                    "Red Hat:rhel_eus:9.2::baseos",
                    "sudo",
                    {"introduced": "0"},
                    {"fixed": "0:1.9.5p2-9.el9_2.2"},
                ),
            ],
            upstream=["CVE-2025-32462"],
        )
    ],
    "Rocky Linux": [
        _record(
            "RLSA-2025:9978",
            [
                _affected(
                    "Rocky Linux:9", "sudo", {"introduced": "0"}, {"fixed": "1.9.5p2-10.el9_6.1"}
                )
            ],
        ),
        # Epochs decide first: 1:3.0.7-27.el9 is older than 1:3.0.7-28.el9.
        _record(
            "RLSA-2024:2447",
            [
                _affected(
                    "Rocky Linux:9",
                    "openssl-libs",
                    {"introduced": "0"},
                    {"fixed": "1:3.0.7-28.el9"},
                )
            ],
        ),
    ],
    "Ubuntu": [
        # USN-5844-1 (CVE-2023-0286): openssl fixed in jammy by 3.0.2-0ubuntu1.8.
        _record(
            "UBUNTU-CVE-2023-0286",
            [
                _affected(
                    "Ubuntu:22.04:LTS",
                    "openssl",
                    {"introduced": "0"},
                    {"fixed": "3.0.2-0ubuntu1.8"},
                ),
                _affected(
                    "Ubuntu:Pro:FIPS-updates:22.04:LTS",
                    "openssl",
                    {"introduced": "0"},
                    {"fixed": "3.0.2-0ubuntu1.99+fips"},
                ),
            ],
        ),
        # A fix published only for Ubuntu Pro (ESM): the free release's package stays vulnerable.
        _record(
            "UBUNTU-CVE-2024-0001",
            [
                _affected(
                    "Ubuntu:Pro:22.04:LTS",
                    "zlib",
                    {"introduced": "0"},
                    {"fixed": "1:1.2.11.dfsg-2ubuntu9.2+esm1"},
                ),
            ],
        ),
    ],
    "Maven": [
        # GHSA-7g45-4rm6-3mm3 (CVE-2023-2976): guava before 32.0.0-android.
        _record(
            "GHSA-7g45-4rm6-3mm3",
            [
                _affected(
                    "Maven",
                    "com.google.guava:guava",
                    {"introduced": "1.0"},
                    {"fixed": "32.0.0-android"},
                )
            ],
        ),
    ],
    "crates.io": [
        # RUSTSEC-2021-0003: smallvec insert_many buffer overflow.
        _record(
            "RUSTSEC-2021-0003",
            [
                _affected(
                    "crates.io",
                    "smallvec",
                    {"introduced": "0.6.3"},
                    {"fixed": "0.6.14"},
                    {"introduced": "1.0.0"},
                    {"fixed": "1.6.1"},
                    kind="SEMVER",
                ),
            ],
        ),
    ],
}


@pytest.fixture
def loaded(osv_root: Path, osv_server: str, capsys: pytest.CaptureFixture[str]) -> VulnDb:
    for ecosystem, records in ARCHIVES.items():
        write_archive(osv_root / ecosystem / "all.zip", records)
    arguments = ["vulndb", "update", "--source", osv_server]
    for ecosystem in ARCHIVES:
        arguments += ["--ecosystem", ecosystem]
    assert main(arguments) == 0
    output = capsys.readouterr().out
    assert "Red Hat: 1 advisories loaded" in output and "crates.io: 1 advisories" in output
    return VulnDb(default_path())


def verdicts(db: VulnDb, os: OperatingSystem | None, package: Package) -> dict[str, str | None]:
    """advisory id -> fixed version, for each advisory whose ranges contain the package's
    version (the store's rows, compiled with the ecosystem's version keys)."""
    ecosystem = release_ecosystem(os, package)
    assert ecosystem is not None, package
    key_of = version_key(ecosystem)
    assert key_of is not None
    base = ecosystem.split(":", 1)[0]
    try:
        key, error = key_of(package.advisory_version), None
    except InvalidVersion as invalid:
        key, error = None, str(invalid)
    found: dict[str, str | None] = {}
    for row in db.affected_rows((ecosystem, base), package.advisory_name):
        for entry in row.detail["entries"]:
            verdict = compile_entry(entry, key_of).verdict(package.advisory_version, key, error)
            if verdict.affected:
                found[row.advisory_id] = verdict.fixed
    return found


def test_index_and_release_names() -> None:
    assert index_ecosystem("Ubuntu:22.04:LTS") == "Ubuntu:22.04"
    assert index_ecosystem("Ubuntu:Pro:18.04:LTS") == "Ubuntu:18.04"
    assert index_ecosystem("Ubuntu:24.10") == "Ubuntu:24.10"
    assert (
        index_ecosystem("Ubuntu:Pro:FIPS-updates:22.04:LTS") == "Ubuntu:Pro:FIPS-updates:22.04:LTS"
    )
    assert index_ecosystem("Red Hat:enterprise_linux:9::appstream") == "Red Hat:9"
    assert index_ecosystem("Red Hat:rhel_eus:9.2::baseos") == "Red Hat:rhel_eus:9.2::baseos"
    rpm = Package(RPM, "sudo", "1.9.5p2-10.el9")
    deb = Package(DEB, "libssl3", "3.0.2-0ubuntu1.7", source_name="openssl")
    assert release_ecosystem(OperatingSystem("rhel", "9.4"), rpm) == "Red Hat:9"
    assert release_ecosystem(OperatingSystem("rocky", "9.3"), rpm) == "Rocky Linux:9"
    assert release_ecosystem(OperatingSystem("almalinux", "8.10"), rpm) == "AlmaLinux:8"
    assert release_ecosystem(OperatingSystem("ubuntu", "22.04"), deb) == "Ubuntu:22.04"
    assert release_ecosystem(OperatingSystem("alpine", "3.19.1"), deb) is None
    assert release_ecosystem(OperatingSystem("ubuntu", "22.04"), rpm) is None
    # A jar known only by its manifest title: OSV names Maven packages group:artifact.
    assert release_ecosystem(None, Package(MAVEN, "shop-api", "1.4.2")) is None
    assert "groupId" in unmatched_reason(None, Package(MAVEN, "shop-api", "1.4.2"))
    assert unmatched_reason(OperatingSystem("fedora", "40"), rpm) == (
        "distribution 'fedora' is not supported"
    )
    assert "no VERSION_ID" in unmatched_reason(OperatingSystem("rocky", None), rpm)
    assert "rpm package on ubuntu" in unmatched_reason(OperatingSystem("ubuntu", "22.04"), rpm)


def test_rpm_distributions(loaded: VulnDb) -> None:
    with loaded as db:
        old_sudo = Package(RPM, "sudo", "1.9.5p2-10.el9", "x86_64")
        new_sudo = Package(RPM, "sudo", "1.9.5p2-10.el9_6.1", "x86_64")
        rhel = OperatingSystem("rhel", "9.4")
        assert verdicts(db, rhel, old_sudo) == {"RHSA-2025:9978": "0:1.9.5p2-10.el9_6.1"}
        assert verdicts(db, rhel, new_sudo) == {}
        rocky = OperatingSystem("rocky", "9.3")
        assert verdicts(db, rocky, old_sudo) == {"RLSA-2025:9978": "1.9.5p2-10.el9_6.1"}
        openssl = Package(RPM, "openssl-libs", "1:3.0.7-27.el9", "x86_64", "openssl")
        assert verdicts(db, rocky, openssl) == {"RLSA-2024:2447": "1:3.0.7-28.el9"}
        # Alma has no data here: nothing is decided for it, and nothing is found.
        assert db.affected_rows(("AlmaLinux:9", "AlmaLinux"), "sudo") == []


def test_ubuntu_release_and_pro_streams(loaded: VulnDb) -> None:
    jammy = OperatingSystem("ubuntu", "22.04")
    with loaded as db:
        libssl = Package(DEB, "libssl3", "3.0.2-0ubuntu1.7", "amd64", "openssl", "3.0.2-0ubuntu1.7")
        assert verdicts(db, jammy, libssl) == {"UBUNTU-CVE-2023-0286": "3.0.2-0ubuntu1.8"}
        patched = Package(
            DEB, "libssl3", "3.0.2-0ubuntu1.8", "amd64", "openssl", "3.0.2-0ubuntu1.8"
        )
        assert verdicts(db, jammy, patched) == {}  # the FIPS stream's fix is not the release's
        zlib = Package(
            DEB, "zlib1g", "1:1.2.11.dfsg-2ubuntu9.2", "amd64", "zlib", "1:1.2.11.dfsg-2ubuntu9.2"
        )
        assert verdicts(db, jammy, zlib) == {
            "UBUNTU-CVE-2024-0001": "1:1.2.11.dfsg-2ubuntu9.2+esm1"
        }


def test_maven_and_crates_from_real_inputs(loaded: VulnDb, tmp_path: Path) -> None:
    blobs = Blobs()
    top = blobs.image(
        [
            layer_tar(
                file("etc/os-release", 'ID=debian\nVERSION_ID="12"\n'),
                file("app/shop-api.jar", spring_boot_jar()),
                executable("usr/local/bin/app", auditable_binary()),
            )
        ]
    )
    contents = read_image(f"oci:{blobs.write_layout(tmp_path / 'layout', {'v1': top})}:v1")
    found = {}
    with loaded as db:
        for package in contents.packages:
            if release_ecosystem(contents.os, package) in ("Maven", "crates.io"):
                found.update(verdicts(db, contents.os, package))
    assert found == {"GHSA-7g45-4rm6-3mm3": "32.0.0-android", "RUSTSEC-2021-0003": "1.6.1"}
