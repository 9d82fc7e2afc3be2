"""Real inputs built by the tools that make them in practice: an rpm database written by
`rpm` from packages `rpmbuild` built, an ELF binary compiled by gcc with a
cargo-auditable `.dep-v0` section added by objcopy, and Java archives made by the JDK's
`jar` around Debian's own jars. Built once per session (scripts/image-tools.sh installs
the tools)."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import sqlite3
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import pytest

_WORK = Path(tempfile.mkdtemp(prefix="kubeproof-real-inputs-"))
atexit.register(shutil.rmtree, _WORK, ignore_errors=True)

# name, epoch, version, release, arch (None: the build machine's), license, owned files
RPM_SPECS = (
    ("openssl-libs", 1, "3.0.7", "27.el9", None, "ASL 2.0", ["/usr/lib64/libssl.so.3"]),
    (
        "python3-requests",
        None,
        "2.25.1",
        "8.el9",
        "noarch",
        "ASL 2.0",
        ["/usr/lib/python3.9/site-packages/requests-2.25.1.dist-info/METADATA"],
    ),
    ("tzdata", None, "2024a", "1.el9", "noarch", "Public Domain", ["/usr/share/zoneinfo/UTC"]),
)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/image-tools.sh (make test-tools)")
    return path


def _spec(
    name: str,
    epoch: int | None,
    version: str,
    release: str,
    arch: str | None,
    license_: str,
    files: list[str],
) -> str:
    lines = [
        f"Name: {name}",
        f"Version: {version}",
        f"Release: {release}",
        f"License: {license_}",
        "Summary: kubeproof test package",
    ]
    lines += [f"Epoch: {epoch}"] if epoch is not None else []
    lines += [f"BuildArch: {arch}"] if arch else []
    install = "\n".join(
        f"mkdir -p %{{buildroot}}{Path(f).parent}\necho test > %{{buildroot}}{f}" for f in files
    )
    return "\n".join([*lines, "%description", "test", "%install", install, "%files", *files, ""])


@functools.cache
def rpmdb() -> bytes:
    """rpmdb.sqlite of a root where `rpm -i --justdb` installed the RPM_SPECS packages."""
    rpmbuild, rpm = _tool("rpmbuild"), _tool("rpm")
    top, root = _WORK / "rpmbuild", _WORK / "rpmroot"
    for spec in RPM_SPECS:
        spec_file = _WORK / f"{spec[0]}.spec"
        spec_file.write_text(_spec(*spec))
        subprocess.run(
            [
                rpmbuild,
                "--quiet",
                "--define",
                f"_topdir {top}",
                "--define",
                "_build_id_links none",
                "-bb",
                str(spec_file),
            ],
            check=True,
            capture_output=True,
        )
    packages = sorted(str(p) for p in (top / "RPMS").rglob("*.rpm"))
    database = ["--root", str(root), "--dbpath", "/var/lib/rpm"]
    subprocess.run([rpm, *database, "--initdb"], check=True, capture_output=True)
    subprocess.run(
        [rpm, *database, "-i", "--justdb", "--nodeps", "--nosignature", *packages],
        check=True,
        capture_output=True,
    )
    return (root / "var/lib/rpm/rpmdb.sqlite").read_bytes()


def header_blobs(sqlite_rpmdb: bytes) -> list[tuple[int, bytes]]:
    """(instance number, header blob) of each package in an rpmdb.sqlite."""
    connection = sqlite3.connect(":memory:")
    data = bytearray(sqlite_rpmdb)
    data[18] = data[19] = 1  # rpm leaves it in WAL mode; deserialize wants a journal
    connection.deserialize(bytes(data))
    rows = connection.execute("SELECT hnum, blob FROM Packages ORDER BY hnum").fetchall()
    connection.close()
    return [(int(number), bytes(blob)) for number, blob in rows]


@functools.cache
def berkeley_rpmdb(byte_order: str = "1234", page_size: int = 4096) -> bytes:
    """The same packages as rpmdb() in the BerkeleyDB `Packages` file of rpm before 4.16:
    a hash database written by BerkeleyDB's own db_load (keys: instance numbers in the
    file's byte order; record 0: the last instance number, as rpm kept it)."""
    load = _tool("db5.3_load")
    code = "<" if byte_order == "1234" else ">"
    rows = [(0, struct.pack(code + "I", 3)), *header_blobs(rpmdb())]
    lines = ["VERSION=3", "format=bytevalue", "type=hash", f"db_lorder={byte_order}"]
    lines += [f"db_pagesize={page_size}", "HEADER=END"]
    for number, blob in rows:
        lines += [" " + struct.pack(code + "I", number).hex(), " " + blob.hex()]
    dump = _WORK / f"dump-{byte_order}-{page_size}.txt"
    dump.write_text("\n".join([*lines, "DATA=END", ""]))
    target = _WORK / f"Packages-{byte_order}-{page_size}"
    target.unlink(missing_ok=True)
    subprocess.run([load, "-f", str(dump), str(target)], check=True, capture_output=True)
    return target.read_bytes()


def rpm_query(data: bytes, name: str = "rpmdb.sqlite") -> set[tuple[str, ...]]:
    """What the real rpm says is installed in a database (`name`: rpmdb.sqlite, or
    Packages for BerkeleyDB, read by rpm's bdb_ro backend): (name, evr, arch, source rpm,
    license), to compare kubeproof's reading with."""
    root = Path(tempfile.mkdtemp(dir=_WORK)) / "var/lib/rpm"
    root.mkdir(parents=True)
    (root / name).write_bytes(data)
    backend = "sqlite" if name == "rpmdb.sqlite" else "bdb_ro"
    output = subprocess.run(
        [
            _tool("rpm"),
            "--dbpath",
            str(root),
            "--define",
            f"_db_backend {backend}",
            "-qa",
            "--qf",
            "%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\t"
            "%{LICENSE}\n",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {tuple(line.split("\t")) for line in output.splitlines()}


CARGO_AUDITABLE = {
    "packages": [
        {
            "name": "app",
            "version": "0.1.0",
            "source": "local",
            "root": True,
            "dependencies": [1, 2, 3],
        },
        {"name": "smallvec", "version": "1.6.0", "source": "crates.io"},
        {"name": "time", "version": "0.1.44", "source": "crates.io"},
        {"name": "cc", "version": "1.0.83", "source": "crates.io", "kind": "build"},
        {"name": "private", "version": "0.2.0", "source": "git"},
    ]
}


@functools.cache
def auditable_binary() -> bytes:
    """A gcc-built ELF executable carrying a cargo-auditable section, as cargo auditable
    writes it: zlib-compressed JSON in `.dep-v0`."""
    gcc, objcopy = _tool("gcc"), _tool("objcopy")
    source, binary = _WORK / "app.c", _WORK / "app"
    source.write_text("int main(void) { return 0; }\n")
    subprocess.run([gcc, "-O0", "-o", str(binary), str(source)], check=True, capture_output=True)
    section = _WORK / "dep-v0"
    section.write_bytes(zlib.compress(json.dumps(CARGO_AUDITABLE).encode(), 9))
    subprocess.run(
        [
            objcopy,
            "--add-section",
            f".dep-v0={section}",
            "--set-section-flags",
            ".dep-v0=noload,readonly",
            str(binary),
        ],
        check=True,
        capture_output=True,
    )
    return binary.read_bytes()


DEBIAN_JARS = (Path("/usr/share/java/guava.jar"), Path("/usr/share/java/commons-io.jar"))


def debian_jar(path: Path) -> bytes:
    if not path.exists():
        pytest.fail(f"{path} missing: run scripts/image-tools.sh (make test-tools)")
    return path.read_bytes()


@functools.cache
def spring_boot_jar() -> bytes:
    """A fat jar laid out as Spring Boot's: the app's classes and manifest, and Debian's
    real guava and commons-io jars stored (uncompressed) under BOOT-INF/lib."""
    jar = _tool("jar")
    tree = _WORK / "boot"
    (tree / "BOOT-INF/lib").mkdir(parents=True)
    (tree / "BOOT-INF/classes").mkdir(parents=True)
    (tree / "BOOT-INF/classes/App.class").write_bytes(b"\xca\xfe\xba\xbe")
    for path in DEBIAN_JARS:
        (tree / "BOOT-INF/lib" / path.name).write_bytes(debian_jar(path))
    manifest = _WORK / "MANIFEST.MF"
    manifest.write_text(
        "Implementation-Title: shop-api\nImplementation-Version: 1.4.2\n"
        "Main-Class: org.springframework.boot.loader.JarLauncher\n"
    )
    output = _WORK / "shop-api.jar"
    subprocess.run(
        [
            jar,
            "--create",
            "--no-compress",
            "--file",
            str(output),
            "--manifest",
            str(manifest),
            "-C",
            str(tree),
            ".",
        ],
        check=True,
        capture_output=True,
    )
    return output.read_bytes()
