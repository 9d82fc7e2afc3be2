"""rpm databases, Java archives and Rust binaries in images: read from real inputs (an
rpmdb written by rpm, Debian's jars inside a jar built by `jar`, a gcc-built ELF with a
cargo-auditable section), compared with what the real tools say, written into the SBOM
and read back; hostile inputs give named problems, never tracebacks."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from images.builders import Blobs, Entry, executable, file, layer_tar, symlink
from images.realinputs import (
    DEBIAN_JARS,
    auditable_binary,
    berkeley_rpmdb,
    debian_jar,
    rpm_query,
    rpmdb,
    spring_boot_jar,
)
from kubeproof.images.java import MAX_NESTING, read_java_archive
from kubeproof.images.osrelease import OperatingSystem
from kubeproof.images.packages import CARGO, MAVEN, PYPI, RPM, Package
from kubeproof.images.reader import ImageContents, read_image
from kubeproof.images.rpm import (
    RpmError,
    header_package,
    parse_header,
    read_rpmdb,
    read_sqlite_rpmdb,
)
from kubeproof.images.rust import read_auditable_crates
from kubeproof.images.sbom import build_sbom, contents_from_sbom, package_url

ROCKY = file(
    "usr/lib/os-release", 'NAME="Rocky Linux"\nID="rocky"\nVERSION_ID="9.3"\nID_LIKE="rhel"\n'
)


def layout_of(tmp_path: Path, *layers: list[Entry]) -> str:
    blobs = Blobs()
    top = blobs.image([layer_tar(*entries) for entries in layers])
    return f"oci:{blobs.write_layout(tmp_path / 'layout', {'v1': top})}:v1"


def typed(contents: ImageContents, kind: str) -> set[tuple[str, str, str]]:
    return {(p.name, p.version, p.location) for p in contents.packages if p.type == kind}


def roundtrip(contents: ImageContents) -> ImageContents:
    """The contents read back from their SBOM, which must be valid CycloneDX 1.6."""
    sbom = build_sbom(contents)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(sbom) is None
    return contents_from_sbom(sbom, "test")


# -- rpm ---------------------------------------------------------------------------------


def test_rpmdb_reading_agrees_with_rpm_itself() -> None:
    headers, problems = read_sqlite_rpmdb(rpmdb(), "rpmdb.sqlite")
    assert problems == []
    assert {
        (h.name, h.evr, h.arch or "", h.source_rpm or "", h.license or "") for h in headers
    } == rpm_query(rpmdb())
    openssl = next(h for h in headers if h.name == "openssl-libs")
    assert openssl.epoch == 1 and openssl.source == ("openssl-libs", "3.0.7-27.el9")
    assert openssl.files == ("usr/lib64/libssl.so.3",)


def test_rpm_image_end_to_end(tmp_path: Path) -> None:
    owned = "usr/lib/python3.9/site-packages/requests-2.25.1.dist-info/METADATA"
    pip_installed = "usr/local/lib/python3.9/site-packages/flask-2.0.1.dist-info/METADATA"
    reference = layout_of(
        tmp_path,
        [
            ROCKY,
            symlink("etc/os-release", "../usr/lib/os-release"),
            # Fedora and RHEL 9 keep the database in usr/lib/sysimage/rpm.
            file("usr/lib/sysimage/rpm/rpmdb.sqlite", rpmdb()),
            file(owned, "Metadata-Version: 2.1\nName: requests\nVersion: 2.25.1\n"),
            file(pip_installed, "Metadata-Version: 2.1\nName: Flask\nVersion: 2.0.1\n"),
        ],
    )
    contents = read_image(reference)
    assert contents.os is not None and (contents.os.id, contents.os.version_id) == ("rocky", "9.3")
    location = "usr/lib/sysimage/rpm/rpmdb.sqlite"
    assert typed(contents, RPM) == {
        ("openssl-libs", "1:3.0.7-27.el9", location),
        ("python3-requests", "2.25.1-8.el9", location),
        ("tzdata", "2024a-1.el9", location),
    }
    # requests belongs to the python3-requests rpm: listed once, as that rpm.
    assert typed(contents, PYPI) == {("flask", "2.0.1", pip_installed)}
    openssl = next(p for p in contents.packages if p.name == "openssl-libs")
    assert openssl.license == "ASL 2.0" and openssl.advisory_name == "openssl-libs"
    assert package_url(openssl, contents.os) == (
        "pkg:rpm/rocky/openssl-libs@3.0.7-27.el9?arch=x86_64&distro=rocky-9.3&epoch=1"
    )
    again = roundtrip(contents)
    assert again.packages == contents.packages


@pytest.mark.parametrize(("byte_order", "page_size"), [("1234", 4096), ("4321", 512)])
def test_berkeley_rpmdb_agrees_with_rpm_itself(byte_order: str, page_size: int) -> None:
    """Little- and big-endian files; 512-byte pages put every header on overflow pages."""
    data = berkeley_rpmdb(byte_order, page_size)
    headers, problems = read_rpmdb(data, "Packages")
    assert problems == []
    assert {
        (h.name, h.evr, h.arch or "", h.source_rpm or "", h.license or "") for h in headers
    } == rpm_query(data, "Packages")


def test_berkeley_rpmdb_image(tmp_path: Path) -> None:
    ubi8 = file("etc/os-release", 'NAME="Red Hat Enterprise Linux"\nID="rhel"\nVERSION_ID="8.9"\n')
    contents = read_image(
        layout_of(tmp_path, [ubi8, file("var/lib/rpm/Packages", berkeley_rpmdb())])
    )
    assert typed(contents, RPM) == {
        ("openssl-libs", "1:3.0.7-27.el9", "var/lib/rpm/Packages"),
        ("python3-requests", "2.25.1-8.el9", "var/lib/rpm/Packages"),
        ("tzdata", "2024a-1.el9", "var/lib/rpm/Packages"),
    }
    openssl = next(p for p in contents.packages if p.name == "openssl-libs")
    assert package_url(openssl, contents.os).startswith("pkg:rpm/redhat/openssl-libs@3.0.7-27")


def test_unsupported_rpm_database_is_a_named_gap(tmp_path: Path) -> None:
    ndb = b"RpmP" + bytes(60)  # the NDB header magic of SUSE's Packages.db
    contents = read_image(
        layout_of(tmp_path, [ROCKY, file("usr/lib/sysimage/rpm/Packages.db", ndb)])
    )
    assert typed(contents, RPM) == set()
    assert any("format NDB not supported" in w for w in contents.warnings), contents.warnings
    # The gap stays with the cached SBOM.
    assert any("NDB" in w for w in roundtrip(contents).warnings)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_berkeley_databases_give_rpm_errors(data: st.DataObject) -> None:
    database = bytearray(berkeley_rpmdb("1234", 512))
    for _ in range(data.draw(st.integers(1, 12))):
        position = data.draw(st.integers(0, len(database) - 1))
        database[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.sampled_from([len(database), data.draw(st.integers(0, len(database)))]))
    try:
        _, problems = read_rpmdb(bytes(database[:cut]), "Packages")
    except RpmError as error:
        assert str(error).startswith("Packages")
    else:
        assert all(p.startswith("Packages") for p in problems)


def test_unreadable_rpmdb_is_named_and_the_rest_is_read(tmp_path: Path) -> None:
    contents = read_image(
        layout_of(
            tmp_path,
            [
                ROCKY,
                file("var/lib/rpm/rpmdb.sqlite", b"SQLite format 3\0" + b"\xff" * 4000),
                executable("usr/bin/app", auditable_binary()),
            ],
        )
    )
    assert any(w.startswith("var/lib/rpm/rpmdb.sqlite:") for w in contents.warnings)
    assert typed(contents, CARGO)


def _sqlite_bytes(statements: list[str], rows: tuple[bytes, ...] = ()) -> bytes:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "db.sqlite"
        connection = sqlite3.connect(path)
        for statement in statements:
            connection.execute(statement)
        for blob in rows:
            connection.execute("INSERT INTO Packages (blob) VALUES (?)", (blob,))
        connection.commit()
        connection.close()
        return path.read_bytes()


def test_hostile_rpm_databases() -> None:
    view = _sqlite_bytes(["CREATE VIEW Packages AS SELECT 1 AS hnum, x'00' AS blob"])
    try:
        read_sqlite_rpmdb(view, "view.sqlite")
        raise AssertionError("a view is not an rpm database")
    except RpmError as error:
        assert "view.sqlite: no Packages table" in str(error)
    real = read_sqlite_rpmdb(rpmdb(), "x")[0]
    blobs = [b"\x00", struct.pack(">II", 0xFFFFFFF, 8) + b"\0" * 8, b"not a header at all"]
    table = "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)"
    packages, problems = read_sqlite_rpmdb(_sqlite_bytes([table], tuple(blobs)), "bad.sqlite")
    assert packages == [] and len(problems) == 3
    assert all(p.startswith("bad.sqlite: package #") for p in problems)
    assert real


def _real_blobs() -> list[bytes]:
    connection = sqlite3.connect(":memory:")
    data = bytearray(rpmdb())
    data[18] = data[19] = 1
    connection.deserialize(bytes(data))
    return [row[0] for row in connection.execute("SELECT blob FROM Packages")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_rpm_headers_give_rpm_errors(data: st.DataObject) -> None:
    blob = bytearray(data.draw(st.sampled_from(_real_blobs())))
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    with contextlib.suppress(RpmError):
        header_package(bytes(blob[:cut]))


@given(st.binary(max_size=300))
def test_random_rpm_headers_and_databases(blob: bytes) -> None:
    for call in (parse_header, lambda b: read_rpmdb(b, "random")):
        with contextlib.suppress(RpmError):
            call(blob)


# -- Java --------------------------------------------------------------------------------


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return output.getvalue()


def test_java_archives_in_an_image(tmp_path: Path) -> None:
    bomb = _zip(
        {
            "META-INF/MANIFEST.MF": b"Implementation-Title: bomb\nImplementation-Version: 1\n",
            "lib/filler.jar": b"\0" * (64 << 20),  # 64 MiB of zeros: ~1000 to 1 compressed
        }
    )
    reference = layout_of(
        tmp_path,
        [
            file("etc/os-release", 'ID=debian\nVERSION_ID="12"\n'),
            file("app/shop-api.jar", spring_boot_jar()),
            file("usr/share/java/commons-io-2.11.0.jar", debian_jar(DEBIAN_JARS[1])),
            file("opt/bomb.jar", bomb),
        ],
    )
    contents = read_image(reference)
    assert typed(contents, MAVEN) == {
        ("shop-api", "1.4.2", "app/shop-api.jar"),
        ("com.google.guava:guava", "31.1-jre", "app/shop-api.jar!/BOOT-INF/lib/guava.jar"),
        ("commons-io:commons-io", "2.11.0", "app/shop-api.jar!/BOOT-INF/lib/commons-io.jar"),
        ("commons-io:commons-io", "2.11.0", "usr/share/java/commons-io-2.11.0.jar"),
        ("bomb", "1", "opt/bomb.jar"),
    }
    assert any("opt/bomb.jar!/lib/filler.jar: compression ratio" in w for w in contents.warnings)
    guava = next(p for p in contents.packages if p.name == "com.google.guava:guava")
    assert package_url(guava, contents.os) == "pkg:maven/com.google.guava/guava@31.1-jre"
    assert roundtrip(contents).packages == contents.packages


def test_java_nesting_limit_and_fallbacks() -> None:
    archive = _zip({"META-INF/maven/g/a/pom.properties": b"groupId=g\nartifactId=a\nversion=9\n"})
    for level in range(MAX_NESTING + 1):
        archive = _zip({f"lib/level{level}.jar": archive}, zipfile.ZIP_STORED)
    artifacts, problems = read_java_archive(archive, "deep.jar")
    assert [a.name for a in artifacts] == []
    assert any("nested deeper than" in p for p in problems)
    named, _ = read_java_archive(_zip({"x.txt": b""}), "lib/netty-codec-4.1.94.Final.jar")
    assert [(a.name, a.version) for a in named] == [("netty-codec", "4.1.94.Final")]
    bundle = _zip(
        {"META-INF/MANIFEST.MF": b"Bundle-SymbolicName: x;singleton:=true\nBundle-Version: 2\n"}
    )
    assert [(a.name, a.version) for a in read_java_archive(bundle, "ok.jar")[0]] == [("x", "2")]


def test_java_total_budget_refuses_the_rest_and_names_it() -> None:
    """Past the total decompressed for one archive, members are refused by name; what
    fitted is kept (guava's 2.9 MB does not fit in 1 MiB, commons-io's does)."""
    artifacts, problems = read_java_archive(spring_boot_jar(), "app.jar", total_limit=1 << 20)
    assert {a.name for a in artifacts} == {"shop-api", "commons-io:commons-io"}
    assert problems == (
        "app.jar!/BOOT-INF/lib/guava.jar: over the 1048576 byte total for one archive "
        "(a zip bomb?), not read",
    )


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.data())
def test_hostile_java_archives_never_raise(noise: bytes, data: st.DataObject) -> None:
    real = bytearray(
        _zip({"META-INF/maven/g/a/pom.properties": b"artifactId=a\nversion=1\n", "in.jar": noise})
    )
    for _ in range(data.draw(st.integers(0, 6))):
        position = data.draw(st.integers(0, len(real) - 1))
        real[position] = data.draw(st.integers(0, 255))
    for candidate in (noise, bytes(real)):
        _, problems = read_java_archive(candidate, "hostile.jar")
        assert all(p.startswith("hostile.jar") for p in problems)


# -- Rust --------------------------------------------------------------------------------


def test_rust_binary_in_an_image(tmp_path: Path) -> None:
    reference = layout_of(
        tmp_path,
        [
            file("etc/os-release", 'ID=debian\nVERSION_ID="12"\n'),
            executable("usr/local/bin/app", auditable_binary()),
        ],
    )
    contents = read_image(reference)
    # The app's own crate, a git dependency and a build-only dependency are left out.
    assert typed(contents, CARGO) == {
        ("smallvec", "1.6.0", "usr/local/bin/app"),
        ("time", "0.1.44", "usr/local/bin/app"),
    }
    smallvec = Package(CARGO, "smallvec", "1.6.0", location="usr/local/bin/app")
    assert package_url(smallvec, OperatingSystem("debian", "12")) == "pkg:cargo/smallvec@1.6.0"
    assert roundtrip(contents).packages == contents.packages


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_auditable_binaries_never_raise(data: st.DataObject) -> None:
    binary = bytearray(auditable_binary())
    for _ in range(data.draw(st.integers(1, 10))):
        # Damage the ELF header and section headers (the end of the file) most.
        position = data.draw(
            st.one_of(st.integers(0, 63), st.integers(len(binary) - 2048, len(binary) - 1))
        )
        binary[position] = data.draw(st.integers(0, 255))
    crates = read_auditable_crates(bytes(binary))
    assert crates is None or all(c.name and c.version for c in crates)


def test_auditable_json_limits() -> None:
    bomb = zlib.compress(b"[" * (9 << 20))
    binary = auditable_binary()
    assert read_auditable_crates(binary) is not None
    assert read_auditable_crates(binary.replace(b".dep-v0", b".dep-v9")) is None
    assert json.loads(zlib.decompress(zlib.compress(b"{}"))) == {}
    assert len(bomb) < (9 << 20)


# -- language packages owned by dpkg and apk packages ------------------------------------


def _debian_python_package() -> tuple[str, str, str]:
    """(dpkg package, its .list file, a Python metadata file it owns) on this machine."""
    info = Path("/var/lib/dpkg/info")
    for listing in sorted(info.glob("python3-*.list")):
        for line in listing.read_text().splitlines():
            metadata = line.endswith((".dist-info/METADATA", ".egg-info"))
            if "/dist-packages/" in line and metadata and Path(line).is_file():
                return listing.name.split(":")[0].removesuffix(".list"), str(listing), line
    raise AssertionError("no python3-* Debian package with Python metadata on this machine")


def test_python_packages_owned_by_dpkg_and_apk_are_listed_once(
    tmp_path: Path, dpkg_status: bytes
) -> None:
    owner, listing, metadata = _debian_python_package()
    own = file("usr/local/lib/python3.11/site-packages/flask-2.0.1.dist-info/METADATA",
               "Metadata-Version: 2.1\nName: Flask\nVersion: 2.0.1\n")  # fmt: skip
    contents = read_image(
        layout_of(
            tmp_path,
            [
                file("etc/os-release", 'ID=debian\nVERSION_ID="12"\n'),
                file("var/lib/dpkg/status", dpkg_status),
                file(listing.lstrip("/"), Path(listing).read_bytes()),
                file(metadata.lstrip("/"), Path(metadata).read_bytes()),
                own,
            ],
        )
    )
    assert owner in {p.name for p in contents.packages if p.type == "deb"}
    assert typed(contents, PYPI) == {("flask", "2.0.1", own.path)}

    apk_db = (
        "P:py3-yaml\nV:6.0.1-r1\no:py-yaml\n"
        "F:usr/lib/python3.11/site-packages/PyYAML-6.0.1.dist-info\nR:METADATA\nR:RECORD\n\n"
        "P:musl\nV:1.2.4-r2\no:musl\nF:lib\nR:ld-musl-x86_64.so.1\n\n"
    )
    contents = read_image(
        layout_of(
            tmp_path / "apk",
            [
                file("etc/alpine-release", "3.19.1\n"),
                file("lib/apk/db/installed", apk_db),
                file(
                    "usr/lib/python3.11/site-packages/PyYAML-6.0.1.dist-info/METADATA",
                    "Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0.1\n",
                ),
                own,
            ],
        )
    )
    assert {p.name for p in contents.packages if p.type == "apk"} == {"py3-yaml", "musl"}
    assert typed(contents, PYPI) == {("flask", "2.0.1", own.path)}
