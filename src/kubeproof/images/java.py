"""Maven artifacts in Java archives (jar, war, ear): each `META-INF/maven/G/A/pom.properties`
(a shaded jar holds one per artifact shaded into it), else the archive's own
`META-INF/MANIFEST.MF` (Implementation-Title / -Version, Bundle-SymbolicName /
Bundle-Version), else a `NAME-VERSION.jar` file name. Archives inside archives (Spring
Boot's BOOT-INF/lib, WEB-INF/lib, an ear's modules) are opened in turn, down to a depth
limit. Zip bombs are refused by size, compression ratio and a total budget per archive;
every problem is reported and the rest of the archive is read."""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
import zlib
from dataclasses import dataclass, field

ARCHIVE_SUFFIXES = (".jar", ".war", ".ear")
MAX_ARCHIVE_BYTES = 256 << 20  # an archive (top-level or nested) read into memory
MAX_NESTING = 4  # app.ear!/lib/x.war!/WEB-INF/lib/y.jar is depth 2
MAX_MEMBERS = 200_000
MAX_METADATA_BYTES = 1 << 20  # one pom.properties or MANIFEST.MF
MAX_RATIO = 100  # jars compress a few to one; a hundred to one over 1 MiB is a bomb
MAX_TOTAL_BYTES = 1 << 30  # everything decompressed from one top-level archive
MAX_PROBLEMS = 20
_RATIO_FLOOR = 1 << 20

# What zipfile raises on damaged, encrypted or oddly compressed members.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    OSError,
    EOFError,
    zlib.error,
    ValueError,
    RuntimeError,
    NotImplementedError,
)
_POM_PROPERTIES = re.compile(r"^META-INF/maven/[^/]+/[^/]+/pom\.properties$")
_FILE_NAME_VERSION = re.compile(r"^(?P<name>.+?)-(?P<version>\d[\w.+-]*)$")


@dataclass(frozen=True)
class JavaArtifact:
    group: str | None
    artifact: str
    version: str
    path: str  # where it was found: app.jar, or app.jar!/BOOT-INF/lib/x.jar

    @property
    def name(self) -> str:
        """`groupId:artifactId`, as OSV's Maven ecosystem names packages."""
        return f"{self.group}:{self.artifact}" if self.group else self.artifact


@dataclass
class _Budget:
    where: str
    remaining: int
    total: int
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
        elif len(self.problems) == MAX_PROBLEMS:
            self.problems.append(f"{self.where}: more problems not listed")


class _Refused(Exception):
    """A member that is not read (the message says why)."""


def parse_properties(text: str) -> dict[str, str]:
    """`key=value` / `key: value` lines of a Java properties file (what pom.properties
    holds); comments and lines without a separator are skipped."""
    properties: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        match = re.match(r"^([^=:\s]+)\s*[=:\s]\s*(.*)$", line)
        if match:
            properties.setdefault(match.group(1), match.group(2).strip())
    return properties


def parse_manifest(text: str) -> dict[str, str]:
    """Main section of a MANIFEST.MF: `Name: value`, continuation lines start with a
    space; it ends at the first blank line."""
    headers: dict[str, str] = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            break
        if line.startswith(" ") and last is not None:
            headers[last] += line[1:]
        elif ":" in line:
            key, _, value = line.partition(":")
            last = key.strip()
            headers.setdefault(last, value.strip())
    return headers


def _read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, budget: _Budget, where: str
) -> bytes:
    if info.file_size > limit:
        raise _Refused(f"{where}: {info.file_size} bytes, over the {limit} byte limit")
    if info.file_size > _RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise _Refused(f"{where}: compression ratio of a zip bomb, not read")
    if info.file_size > budget.remaining:
        raise _Refused(
            f"{where}: over the {budget.total} byte total for one archive (a zip bomb?), not read"
        )
    with archive.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit or len(data) > budget.remaining:
        raise _Refused(f"{where}: larger than its header says (a zip bomb?), not read")
    budget.remaining -= len(data)
    return data


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _manifest_artifact(headers: dict[str, str], path: str) -> JavaArtifact | None:
    version = headers.get("Implementation-Version") or headers.get("Bundle-Version")
    title = headers.get("Implementation-Title")
    symbolic = (headers.get("Bundle-SymbolicName") or "").split(";")[0].strip()
    if not version or not (title or symbolic):
        return None
    group = headers.get("Implementation-Vendor-Id") or None
    return JavaArtifact(group, title or symbolic, version, path)


def _file_name_artifact(path: str) -> JavaArtifact | None:
    stem = posixpath.basename(path.rsplit("!/", 1)[-1]).rsplit(".", 1)[0]
    match = _FILE_NAME_VERSION.match(stem)
    if match is None:
        return None
    return JavaArtifact(None, match.group("name"), match.group("version"), path)


def _scan(data: bytes, path: str, depth: int, budget: _Budget) -> list[JavaArtifact]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (*_ZIP_ERRORS, zipfile.LargeZipFile) as error:
        budget.problem(f"{path}: not a readable zip archive ({error})")
        return []
    with archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            budget.problem(f"{path}: {len(members)} entries, over {MAX_MEMBERS}: not read")
            return []
        artifacts: list[JavaArtifact] = []
        manifest: dict[str, str] = {}
        nested: list[zipfile.ZipInfo] = []
        for info in members:
            name = info.filename
            inside = f"{path}!/{name}"
            try:
                if _POM_PROPERTIES.match(name):
                    data = _read_member(archive, info, MAX_METADATA_BYTES, budget, inside)
                    properties = parse_properties(_text(data))
                    artifact, version = properties.get("artifactId"), properties.get("version")
                    if artifact and version:
                        group = properties.get("groupId") or None
                        artifacts.append(JavaArtifact(group, artifact, version, path))
                elif name == "META-INF/MANIFEST.MF":
                    data = _read_member(archive, info, MAX_METADATA_BYTES, budget, inside)
                    manifest = parse_manifest(_text(data))
                elif name.lower().endswith(ARCHIVE_SUFFIXES) and not info.is_dir():
                    nested.append(info)
            except _Refused as refusal:
                budget.problem(str(refusal))
            except _ZIP_ERRORS as error:
                budget.problem(f"{inside}: corrupt entry ({error})")
        if not artifacts:
            fallback = _manifest_artifact(manifest, path) or _file_name_artifact(path)
            artifacts += [fallback] if fallback else []
        for info in nested:
            inner = f"{path}!/{info.filename}"
            if depth + 1 > MAX_NESTING:
                budget.problem(f"{inner}: nested deeper than {MAX_NESTING} archives: not read")
                continue
            try:
                data = _read_member(archive, info, MAX_ARCHIVE_BYTES, budget, inner)
            except _Refused as refusal:
                budget.problem(str(refusal))
                continue
            except _ZIP_ERRORS as error:
                budget.problem(f"{inner}: corrupt entry ({error})")
                continue
            artifacts += _scan(data, inner, depth + 1, budget)
    return artifacts


def read_java_archive(
    data: bytes, path: str, total_limit: int = MAX_TOTAL_BYTES
) -> tuple[tuple[JavaArtifact, ...], tuple[str, ...]]:
    """The artifacts of one archive (and those nested in it), and the problems met;
    `total_limit` bounds everything decompressed from it."""
    budget = _Budget(path, total_limit, total_limit)
    artifacts = _scan(data, path, 0, budget)
    return tuple(dict.fromkeys(artifacts)), tuple(budget.problems)
