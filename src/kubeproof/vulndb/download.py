"""`kubeproof vulndb update`: fetch OSV's per-ecosystem bulk archives
(`<SOURCE>/<ecosystem>/all.zip`) and load them into the local database. Zip bombs and
malformed records are rejected with a message naming the member; the rest is loaded. An
archive that cannot be read at all leaves that ecosystem's previous data in place."""

from __future__ import annotations

import http.client
import json
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeproof.vulndb.osv import MalformedRecord, validate_record
from kubeproof.vulndb.store import VulnDb

DEFAULT_SOURCE = "https://osv-vulnerabilities.storage.googleapis.com"
DEFAULT_ECOSYSTEMS = ("Debian", "Alpine", "PyPI", "Go", "npm")
MAX_ARCHIVE_BYTES = 4 << 30
MAX_RECORD_BYTES = 16 << 20
MAX_TOTAL_BYTES = 16 << 30
MAX_MEMBERS = 5_000_000
MAX_RATIO = 200  # OSV JSON compresses ~10:1; hundreds to one is a bomb
MAX_PROBLEMS_KEPT = 20


class ArchiveError(Exception):
    """An archive that cannot be used at all."""


@dataclass
class ArchiveRecords:
    """Valid records of one archive, read lazily; rejected ones are counted and described."""

    path: Path
    name: str  # for messages: the URL or file
    rejected: int = 0
    problems: list[str] = field(default_factory=list)

    def _reject(self, member: str, reason: str) -> None:
        self.rejected += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(f"{self.name}: {member}: {reason}")

    def _member_bytes(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes | None:
        if info.file_size > MAX_RECORD_BYTES:
            self._reject(
                info.filename,
                f"{info.file_size} bytes, over the {MAX_RECORD_BYTES} byte limit for one record",
            )
            return None
        if info.file_size > (1 << 20) and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            self._reject(info.filename, "compression ratio of a zip bomb")
            return None
        with archive.open(info) as member:
            data = member.read(MAX_RECORD_BYTES + 1)
        if len(data) > MAX_RECORD_BYTES:
            self._reject(info.filename, "larger than it claims")
            return None
        return data

    def __iter__(self) -> Iterator[dict[str, Any]]:
        total = 0
        try:
            with zipfile.ZipFile(self.path) as archive:
                members = [
                    i for i in archive.infolist() if not i.is_dir() and i.filename.endswith(".json")
                ]
                if len(members) > MAX_MEMBERS:
                    raise ArchiveError(f"{self.name}: {len(members)} members, over {MAX_MEMBERS}")
                for info in members:
                    try:
                        data = self._member_bytes(archive, info)
                    except (zipfile.BadZipFile, OSError, EOFError) as error:
                        self._reject(info.filename, f"corrupt member ({error})")
                        continue
                    if data is None:
                        continue
                    total += len(data)
                    if total > MAX_TOTAL_BYTES:
                        raise ArchiveError(
                            f"{self.name}: over {MAX_TOTAL_BYTES} bytes uncompressed"
                        )
                    try:
                        yield validate_record(json.loads(data))
                    except MalformedRecord as error:
                        self._reject(info.filename, str(error))
                    except ValueError as error:
                        self._reject(info.filename, f"not valid JSON ({str(error)[:120]})")
                    except RecursionError:
                        self._reject(info.filename, "nested too deeply")
        except zipfile.BadZipFile as error:
            raise ArchiveError(f"{self.name}: not a zip archive ({error})") from None


@dataclass(frozen=True)
class UpdateResult:
    ecosystem: str
    url: str
    stored: int = 0
    rejected: int = 0
    problems: tuple[str, ...] = ()
    error: str | None = None


def archive_url(source: str, ecosystem: str) -> str:
    return f"{source.rstrip('/')}/{urllib.parse.quote(ecosystem)}/all.zip"


def download(url: str, destination: Path, timeout: float) -> None:
    try:
        with (
            urllib.request.urlopen(url, timeout=timeout) as response,
            destination.open("wb") as output,
        ):
            copied = 0
            while chunk := response.read(1 << 20):
                copied += len(chunk)
                if copied > MAX_ARCHIVE_BYTES:
                    raise ArchiveError(f"{url}: over {MAX_ARCHIVE_BYTES} bytes")
                output.write(chunk)
            if response.length:  # read by the MiB, a body cut short ends early, silently
                raise ArchiveError(f"{url}: the download was cut short")
    except urllib.error.HTTPError as error:
        raise ArchiveError(f"{url}: HTTP {error.code}") from None
    except http.client.HTTPException as error:  # its text may be the server's garbage
        raise ArchiveError(f"{url}: not an HTTP answer ({type(error).__name__})") from None
    except (urllib.error.URLError, OSError) as error:
        raise ArchiveError(f"{url}: cannot download ({getattr(error, 'reason', error)})") from None


def load_archive(db: VulnDb, ecosystem: str, path: Path, name: str) -> UpdateResult:
    records = ArchiveRecords(path, name)
    try:
        stored = db.replace_source(ecosystem, name, records, lambda: records.rejected)
    except ArchiveError as error:
        return UpdateResult(ecosystem, name, error=str(error))
    return UpdateResult(ecosystem, name, stored, records.rejected, tuple(records.problems))


def update(
    db: VulnDb,
    source: str = DEFAULT_SOURCE,
    ecosystems: tuple[str, ...] = DEFAULT_ECOSYSTEMS,
    timeout: float = 120.0,
) -> list[UpdateResult]:
    results = []
    with tempfile.TemporaryDirectory(dir=db.path.parent, prefix=".osv-") as directory:
        for ecosystem in ecosystems:
            url = archive_url(source, ecosystem)
            archive = Path(directory) / "all.zip"
            try:
                download(url, archive, timeout)
            except ArchiveError as error:
                results.append(UpdateResult(ecosystem, url, error=str(error)))
                continue
            results.append(load_archive(db, ecosystem, archive, url))
            archive.unlink()
    shutil.rmtree(directory, ignore_errors=True)
    return results
