"""Benchmark: image vulnerability matching and package extraction.

Generates (in a temporary directory, or --workdir to keep it):

- a synthetic OSV data set of 300,000 advisories across Debian:12, PyPI, npm and Go, with
  real-looking version schemes and ranges (introduced/fixed pairs over several branches,
  last_affected, open-ended ranges, explicit `versions` lists, aliases, CVSS vectors),
  advisories per package following a Zipf-like law as in the real data (a few packages
  with thousands, most with a handful). It is zipped per ecosystem and loaded through the
  store's own path (`load_archive`: validation, one transaction per ecosystem);
- 2,000 installed packages drawn from those names (mostly ordinary ones, one in twenty
  among the popular ones, as images carry glibc and openssl), in recent versions;
- 1,000 SBOMs in the SBOM cache (200-400 packages each, from shared base layers), matched
  once as a baseline, then an update adds advisories and every SBOM is re-matched
  (`kubeproof image rescan`'s path);
- an OCI layout of ~500 MB (uncompressed) in many gzip layers: filler files, executables
  (this machine's /usr/bin ELF files, which the Go build info reader must open), this
  machine's real dpkg status, site-packages dist-info and node_modules packages.

Then it times (a) matching the 2,000 packages against the database (target <= 1 s),
(b) re-matching the 1,000 SBOMs after the update (target <= 30 s), (c) package
extraction from the image, digests verified (target <= 10 s), and reports (d) the size
of the database on disk.

    python bench/vuln_matching.py                       # the full sizes above
    python bench/vuln_matching.py --advisories 30000 --image-mb 50   # a quick run
    python bench/vuln_matching.py --workdir vulnbench   # keep the generated data
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kubeproof.images.cached import scan_image
from kubeproof.images.osrelease import OperatingSystem
from kubeproof.images.packages import DEB, GOLANG, NPM, PYPI, Package
from kubeproof.images.reader import ImageContents
from kubeproof.images.sbom import build_sbom, store_cached
from kubeproof.vulndb.download import load_archive
from kubeproof.vulndb.match import Matcher
from kubeproof.vulndb.rescan import rescan
from kubeproof.vulndb.store import VulnDb
from kubeproof.vulndb.versions import comparator

BOOKWORM = OperatingSystem("debian", "12")
# Share of the advisories and of the package names per ecosystem (roughly osv.dev's mix).
ECOSYSTEMS = {"Debian": 0.40, "PyPI": 0.20, "npm": 0.28, "Go": 0.12}
NAMES_PER_ADVISORY = {"Debian": 1 / 25, "PyPI": 1 / 4, "npm": 1 / 3, "Go": 1 / 6}
PACKAGE_TYPE = {"Debian": DEB, "PyPI": PYPI, "npm": NPM, "Go": GOLANG}
INSTALLED_MIX = {"Debian": 0.25, "PyPI": 0.25, "npm": 0.40, "Go": 0.10}
SYLLABLES = ["lib", "py", "node", "go", "ssl", "xml", "http", "json", "yaml", "crypt", "zip"]
SYLLABLES += ["net", "core", "util", "web", "auth", "sql"]


# -- versions in each ecosystem's style ------------------------------------------------


def _semver(rng: random.Random, lowest_major: int) -> str:
    text = f"{rng.randint(lowest_major, 12)}.{rng.randint(0, 30)}.{rng.randint(0, 40)}"
    if rng.random() < 0.1:
        text += rng.choice(["-alpha.1", "-beta.2", "-rc.1", "-0"])
    return text


def version_of(ecosystem: str, rng: random.Random, recent: bool = False) -> str:
    """A version in the ecosystem's style. `recent` ones (what images install) mostly have
    high majors, above most advisories' fixes, so only some of them are affected."""
    lowest_major = 8 if recent and rng.random() < 0.9 else 0
    if ecosystem == "Debian":
        upstream = f"{rng.randint(lowest_major, 12)}.{rng.randint(0, 40)}.{rng.randint(0, 20)}"
        epoch = "1:" if rng.random() < 0.1 else ""
        return f"{epoch}{upstream}-{rng.randint(1, 12)}+deb12u{rng.randint(1, 9)}"
    if ecosystem == "PyPI":
        text = f"{rng.randint(lowest_major, 12)}.{rng.randint(0, 40)}"
        if rng.random() < 0.7:
            text += f".{rng.randint(0, 20)}"
        return text + (rng.choice(["rc1", "b2", ".post1"]) if rng.random() < 0.05 else "")
    if ecosystem == "Go" and rng.random() < 0.15:
        stamp = datetime(2019, 1, 1) + timedelta(minutes=rng.randint(0, 3_000_000))
        return f"0.0.0-{stamp:%Y%m%d%H%M%S}-{rng.getrandbits(48):012x}"
    return _semver(rng, lowest_major)


def _sort_key(ecosystem: str, version: str) -> Any:
    compare = comparator(ecosystem)
    assert compare is not None
    return functools.cmp_to_key(compare)(version)


def ranges_for(ecosystem: str, rng: random.Random) -> dict[str, Any]:
    """One affected[] entry's ranges or versions, shaped like real records."""
    kind = "SEMVER" if ecosystem in ("npm", "Go") else "ECOSYSTEM"
    roll = rng.random()
    if ecosystem in ("PyPI", "npm") and roll < 0.25:
        versions = sorted(
            {version_of(ecosystem, rng) for _ in range(rng.randint(2, 40))},
            key=lambda v: _sort_key(ecosystem, v),
        )
        return {
            "versions": versions,
            "ranges": [
                {"type": kind, "events": [{"introduced": versions[0]}, {"fixed": "99.0.0"}]}
            ],
        }
    points = sorted(
        {version_of(ecosystem, rng) for _ in range(rng.choice([1, 1, 1, 2, 3, 4]))},
        key=lambda v: _sort_key(ecosystem, v),
    )
    events: list[dict[str, str]] = [{"introduced": "0"}]
    for index, point in enumerate(points):
        if index % 2 == 0:
            events.append({"fixed": point} if roll < 0.9 else {"last_affected": point})
        else:
            events.append({"introduced": point})
    if roll > 0.97:
        events = [{"introduced": "0"}]  # not fixed
    return {"ranges": [{"type": kind, "events": events}]}


def package_names(ecosystem: str, count: int, rng: random.Random) -> list[str]:
    names = []
    for number in range(count):
        stem = "-".join(rng.sample(SYLLABLES, 2)) + f"{number}"
        if ecosystem == "Go":
            names.append(f"github.com/{rng.choice(SYLLABLES)}org{number % 997}/{stem}")
        elif ecosystem == "npm" and number % 5 == 0:
            names.append(f"@{rng.choice(SYLLABLES)}/{stem}")
        else:
            names.append(stem)
    if ecosystem == "Go":
        names[0] = "stdlib"
    return names


def zipf_choice(names: list[str], rng: random.Random) -> str:
    """Index ~ 1/rank: a few names are very popular."""
    return names[min(len(names) - 1, int(len(names) ** rng.random()) - 1)]


def installed_choice(names: list[str], rng: random.Random) -> str:
    """Most installed packages are ordinary ones; some are popular (openssl, lodash)."""
    if rng.random() < 0.95:
        return rng.choice(names)
    return names[min(len(names) - 1, 10 + int(len(names) ** rng.random()))]


def advisory(ecosystem: str, number: int, name: str, rng: random.Random) -> dict[str, Any]:
    record_id = {
        "Debian": f"DEBIAN-CVE-2{number:09d}",
        "PyPI": f"PYSEC-{2015 + number % 10}-{number}",
        "npm": f"GHSA-{number:04x}-npm-{number % 9999:04d}",
        "Go": f"GO-{2019 + number % 6}-{number}",
    }[ecosystem]
    published = datetime(2015, 1, 1, tzinfo=UTC) + timedelta(minutes=number * 7 % 5_000_000)
    record: dict[str, Any] = {
        "schema_version": "1.6.0",
        "id": record_id,
        "modified": (published + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "published": published.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aliases": [f"CVE-{published.year}-{number % 99999:05d}"],
        "summary": f"{name}: {rng.choice(['buffer overflow', 'ReDoS', 'path traversal'])}",
        "affected": [
            {
                "package": {
                    "ecosystem": "Debian:12" if ecosystem == "Debian" else ecosystem,
                    "name": name,
                },
                **ranges_for(ecosystem, rng),
            }
        ],
    }
    if rng.random() < 0.6:
        record["severity"] = [
            {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}
        ]
    return record


def write_archives(root: Path, total: int, seed: int) -> dict[str, list[str]]:
    """<root>/<ecosystem>/all.zip; returns the package names per ecosystem."""
    rng = random.Random(seed)
    names_by_ecosystem: dict[str, list[str]] = {}
    for ecosystem, share in ECOSYSTEMS.items():
        count = int(total * share)
        names = package_names(ecosystem, max(1, int(count * NAMES_PER_ADVISORY[ecosystem])), rng)
        names_by_ecosystem[ecosystem] = names
        path = root / ecosystem / "all.zip"
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for number in range(count):
                # Every name gets one advisory, the rest go to popular names.
                name = names[number] if number < len(names) else zipf_choice(names, rng)
                record = advisory(ecosystem, number, name, rng)
                archive.writestr(f"{record['id']}.json", json.dumps(record))
    return names_by_ecosystem


def installed_packages(
    names: dict[str, list[str]], count: int, rng: random.Random
) -> tuple[Package, ...]:
    packages: set[Package] = set()
    for ecosystem, share in INSTALLED_MIX.items():
        wanted = int(count * share)
        kind = PACKAGE_TYPE[ecosystem]
        while sum(1 for p in packages if p.type == kind) < wanted:
            name = installed_choice(names[ecosystem], rng)
            version = version_of(ecosystem, rng, recent=True)
            if ecosystem == "Go" and name != "stdlib":
                version = "v" + version
            source_name, source_version = (name, version) if kind == DEB else (None, None)
            packages.add(
                Package(
                    kind,
                    name,
                    version,
                    source_name=source_name,
                    source_version=source_version,
                    location=f"{ecosystem}/db",
                )
            )
    return tuple(sorted(packages))


# -- (c) a large image -------------------------------------------------------------------


def _tar_bytes(entries: list[tuple[str, bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data, mode in entries:
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _real_executables(limit: int) -> list[tuple[str, bytes]]:
    found, total = [], 0
    for path in sorted(Path("/usr/bin").iterdir()):
        try:
            data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
        except OSError:
            continue
        if data.startswith(b"\x7fELF") and total + len(data) <= limit:
            found.append((f"usr/bin/{path.name}", data))
            total += len(data)
    return found


def _package_files() -> list[tuple[str, bytes, int]]:
    files: list[tuple[str, bytes, int]] = [
        ("etc/os-release", b'ID=debian\nVERSION_ID="12"\n', 0o644),
    ]
    status = Path("/var/lib/dpkg/status")
    if status.is_file():
        files.append(("var/lib/dpkg/status", status.read_bytes(), 0o644))
    site = "usr/local/lib/python3.12/site-packages"
    for metadata in sorted(
        Path(sys.prefix).glob("lib/python3*/site-packages/*.dist-info/METADATA")
    ):
        files.append((f"{site}/{metadata.parent.name}/METADATA", metadata.read_bytes(), 0o644))
    for number in range(300):
        manifest = json.dumps({"name": f"dep{number}", "version": f"1.{number}.0"}).encode()
        files.append((f"srv/app/node_modules/dep{number}/package.json", manifest, 0o644))
    return files


def write_image(root: Path, megabytes: int, seed: int) -> tuple[str, int]:
    """An OCI layout (~megabytes uncompressed); returns its reference and layer bytes."""
    rng = random.Random(seed)
    blobs: dict[str, bytes] = {}

    def add(data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    target = megabytes << 20
    executables = _real_executables(target // 10)
    layers: list[bytes] = [_tar_bytes(_package_files())]
    layers.append(_tar_bytes([(path, data, 0o755) for path, data in executables]))
    written = sum(len(layer) for layer in layers)
    text = b"".join(rng.choice(SYLLABLES).encode() + b" " for _ in range(200_000))
    layer_number = 0
    while written < target:
        entries = []
        for file_number in range(2000):
            size = min(int(rng.paretovariate(1.2) * 4096), 4 << 20)
            # Half random (compressed binaries, images), half text: gzip ~2:1 like real layers.
            chunk = os.urandom(size // 2) + text[: size - size // 2]
            entries.append((f"opt/filler{layer_number}/{file_number}.bin", chunk, 0o644))
        layer = _tar_bytes(entries)
        layers.append(layer)
        written += len(layer)
        layer_number += 1
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {
            "type": "layers",
            "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers],
        },
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            **add(json.dumps(config).encode()),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                **add(gzip.compress(layer, compresslevel=1, mtime=0)),
            }
            for layer in layers
        ],
    }
    descriptor = {"mediaType": manifest["mediaType"], **add(json.dumps(manifest).encode())}
    (root / "oci-layout").parent.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    for digest, data in blobs.items():
        path = root / "blobs" / "sha256" / digest.split(":", 1)[1]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    descriptor["annotations"] = {"org.opencontainers.image.ref.name": "big"}
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))
    return f"oci:{root}:big", written


# -- (b) SBOMs ---------------------------------------------------------------------------


def sbom_contents(
    names: dict[str, list[str]], count: int, rng: random.Random
) -> Iterator[ImageContents]:
    """Images built from a few shared base layers plus their own application packages."""
    bases = [installed_packages(names, 150, random.Random(seed)) for seed in range(8)]
    fleet = installed_packages(names, 20_000, random.Random(99))  # the org's dependencies
    for number in range(count):
        own = rng.sample(fleet, rng.randint(50, 250))
        packages = tuple(sorted(set(bases[number % len(bases)]) | set(own)))
        digest = "sha256:" + hashlib.sha256(f"image {number}".encode()).hexdigest()
        yield ImageContents(f"registry.test/app{number}:1", digest, None, BOOKWORM, packages)


def extra_advisories(names: dict[str, list[str]], rng: random.Random) -> list[dict[str, Any]]:
    return [advisory("npm", 10_000_000 + n, zipf_choice(names["npm"], rng), rng) for n in range(50)]


# -- the run -----------------------------------------------------------------------------


def timed(label: str, results: list[tuple[str, float, str]], target: str) -> Any:
    class Timer:
        def __enter__(self) -> None:
            self.started = time.perf_counter()

        def __exit__(self, *_: object) -> None:
            results.append((label, time.perf_counter() - self.started, target))

    return Timer()


def run(arguments: argparse.Namespace, work: Path) -> None:
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")
    results: list[tuple[str, float, str]] = []
    notes: list[str] = []
    rng = random.Random(arguments.seed)

    archives = work / "osv"
    started = time.perf_counter()
    names = write_archives(archives, arguments.advisories, arguments.seed)
    notes.append(
        f"generated {arguments.advisories} advisories in {time.perf_counter() - started:.0f} s"
    )
    database = work / "osv.sqlite3"
    database.unlink(missing_ok=True)
    started = time.perf_counter()
    with VulnDb(database, create=True) as db:
        for ecosystem in ECOSYSTEMS:
            result = load_archive(db, ecosystem, archives / ecosystem / "all.zip", ecosystem)
            assert result.error is None and result.rejected == 0, result
        stored = sum(status.advisories for status in db.sources())
    loaded_size = database.stat().st_size
    notes.append(f"loaded {stored} advisories in {time.perf_counter() - started:.0f} s")

    packages = installed_packages(names, arguments.packages, rng)
    label = f"(a) match {len(packages)} packages, {stored} advisories"
    with VulnDb(database) as db, timed(label, results, "1 s"):
        report = Matcher(db).match(BOOKWORM, packages)
    notes.append(
        f"(a) {len(report.findings)} findings, {report.checked} checked, "
        f"{len(report.unchecked)} unchecked"
    )

    with VulnDb(database) as db:
        for contents in sbom_contents(names, arguments.sboms, rng):
            store_cached(contents, build_sbom(contents))
        baseline = rescan(db)
        notes.append(f"(b) baseline: {baseline.images} SBOMs matched ({baseline.baselines} new)")
        # The update: the npm archive again, with 50 new advisories, through the load path.
        with zipfile.ZipFile(archives / "npm" / "all.zip", "a", zipfile.ZIP_DEFLATED) as archive:
            for record in extra_advisories(names, rng):
                archive.writestr(f"{record['id']}.json", json.dumps(record))
        assert load_archive(db, "npm", archives / "npm" / "all.zip", "npm").error is None
        with timed(f"(b) re-match {arguments.sboms} cached SBOMs after an update", results, "30 s"):
            again = rescan(db)
        notes.append(
            f"(b) {again.images} SBOMs re-matched, {len(again.disclosures)} newly disclosed"
        )

    reference, layer_bytes = write_image(work / "image", arguments.image_mb, arguments.seed)
    with timed(f"(c) extract packages, {layer_bytes / 1e6:.0f} MB image", results, "10 s"):
        scanned = scan_image(reference, use_cache=False)
    kinds = sorted({p.type for p in scanned.contents.packages})
    notes.append(f"(c) {len(scanned.contents.packages)} packages ({', '.join(kinds)})")

    print()
    for note in notes:
        print(note)
    print()
    print(f"{'measurement':<68} {'seconds':>8}  target")
    for label, seconds, target in results:
        limit = float(target.split()[0])
        verdict = "ok" if seconds <= limit else "OVER"
        print(f"{label:<68} {seconds:>8.2f}  <= {target} {verdict}")
    print(
        f"{'(d) vulnerability database on disk, as loaded':<68} {loaded_size / 1e6:>7.0f} MB"
        f"  ({loaded_size / max(stored, 1):.0f} bytes per advisory)"
    )
    size = database.stat().st_size
    print(
        f"{'    after the update and the rescans recorded (free pages kept)':<68} "
        f"{size / 1e6:>7.0f} MB"
    )
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"load average (1, 5, 15 min) at the end: {load} on {os.cpu_count()} cores")
    print(f"command: python bench/vuln_matching.py {' '.join(sys.argv[1:])}".rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--advisories", type=int, default=300_000)
    parser.add_argument("--packages", type=int, default=2_000)
    parser.add_argument("--sboms", type=int, default=1_000)
    parser.add_argument("--image-mb", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, help="keep the generated data here")
    arguments = parser.parse_args()
    if arguments.workdir:
        arguments.workdir.mkdir(parents=True, exist_ok=True)
        run(arguments, arguments.workdir)
        return
    with tempfile.TemporaryDirectory(prefix="kubeproof-vulnbench-") as directory:
        run(arguments, Path(directory))


if __name__ == "__main__":
    main()
