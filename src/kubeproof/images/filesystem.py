"""Apply image layers in order to a tiny in-memory view of the root filesystem that holds
only the files kubeproof reads (os-release, package databases) and every symlink (to
resolve paths like etc/os-release -> ../usr/lib/os-release). Whiteouts (`.wh.NAME`) and
opaque directories (`.wh..wh..opq`) hide lower layers as the OCI image spec says. Entries
are never written to disk; paths that climb out of the root are refused."""

from __future__ import annotations

import gzip
import io
import posixpath
import re
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, cast

from kubeproof.images.errors import ImageError
from kubeproof.images.gobinary import GoBuildInfo, looks_like_executable, read_build_info
from kubeproof.images.java import (
    ARCHIVE_SUFFIXES,
    MAX_ARCHIVE_BYTES,
    JavaArtifact,
    read_java_archive,
)
from kubeproof.images.rpm import DATABASE_DIRECTORIES, DATABASE_PATHS, UNSUPPORTED_DATABASES
from kubeproof.images.rust import Crate, read_auditable_crates

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
MAX_SYMLINK_HOPS = 40
MAX_SYMLINKS = 1_000_000
# Linux refuses a symlink target longer than PATH_MAX: a longer one is a hostile entry.
MAX_SYMLINK_TARGET = 4096
MAX_SYMLINK_BYTES = 64 << 20  # all targets together; real images hold a few MiB
MAX_TOTAL_WANTED_BYTES = 512 << 20
# Real layers hold tens of thousands of entries, a huge node_modules a few hundred thousand.
MAX_LAYER_ENTRIES = 1_000_000
MAX_WARNINGS = 20
MAX_JAVA_PROBLEMS = 100

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass(frozen=True)
class Wanted:
    """How much of a file to keep: `limit` bytes; a larger file is an error when
    `whole` (a package database read in part would hide packages), else its head."""

    limit: int
    whole: bool = True


_OS_FILES = {"etc/os-release", "usr/lib/os-release", "etc/alpine-release", "etc/debian_version"}
_DATABASES = {"var/lib/dpkg/status", "lib/apk/db/installed", *DATABASE_PATHS}
# rpm databases in formats not read: kept (a few bytes) only to say so.
_UNREAD_DATABASES = {f"{d}/{name}" for d in DATABASE_DIRECTORIES for name in UNSUPPORTED_DATABASES}
_PYTHON_METADATA = re.compile(
    r"(?:^|/)(?:site|dist)-packages/[^/]+\.(?:dist-info/METADATA|egg-info/PKG-INFO|egg-info)$"
)
_DPKG_STATUS_D = re.compile(r"^var/lib/dpkg/status\.d/[^/]+$")
DPKG_FILE_LIST = re.compile(r"^var/lib/dpkg/info/[^/]+\.list$")  # the files a package owns
NPM_PACKAGE_JSON = re.compile(r"(?:^|/)node_modules/(?:@[^/]+/)?[^/]+/package\.json$")
NPM_LOCKFILE = re.compile(r"(?:^|/)package-lock\.json$")
# Go binaries are recognised by content, not name: executables up to this size are read.
MAX_GO_BINARY = 512 << 20
_EXECUTABLE_BITS = 0o111


def wanted_file(path: str) -> Wanted | None:
    """The files that package and OS detection need; everything else is skipped unread."""
    if path in _OS_FILES:
        return Wanted(64 << 10)
    if path in _DATABASES:
        return Wanted(128 << 20)
    if path in _UNREAD_DATABASES:
        return Wanted(16, whole=False)
    if _DPKG_STATUS_D.match(path) and not path.endswith(".md5sums"):
        return Wanted(4 << 20)
    if DPKG_FILE_LIST.match(path):
        return Wanted(16 << 20)
    if _PYTHON_METADATA.search(path):
        return Wanted(256 << 10, whole=False)  # headers come first; the rest is description
    if NPM_PACKAGE_JSON.search(path):
        return Wanted(4 << 20)
    if NPM_LOCKFILE.search(path) and "/node_modules/" not in f"/{path}":
        return Wanted(64 << 20)
    return None


def normalise_entry_path(name: str) -> str | None:
    """The root-relative path of a tar entry, or None when it would leave the root.
    Leading `/` and `./` are dropped (layers written with absolute names mean the root)."""
    path = posixpath.normpath("/" + name.replace("\\", "/")).lstrip("/") if name else ""
    if any(part == ".." for part in name.split("/")):
        # normpath from "/" already clamps, but a `..` entry is hostile: refuse it outright.
        return None
    return path or None


@dataclass
class ImageFiles:
    """The wanted files and all symlinks of the merged image filesystem."""

    files: dict[str, bytes] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    go_binaries: dict[str, GoBuildInfo] = field(default_factory=dict)
    rust_binaries: dict[str, tuple[Crate, ...]] = field(default_factory=dict)
    java_archives: dict[str, tuple[JavaArtifact, ...]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    skipped_entries: int = 0
    java_problems: int = 0

    def skip_entry(self, where: str, name: str, why: str) -> None:
        """Note a hostile tar entry refused (a layer may hold millions: the first few are
        named, the rest counted)."""
        self.skipped_entries += 1
        if self.skipped_entries <= MAX_WARNINGS:
            self.warnings.append(f"{where}: skipped entry {name[:200]!r} {why}")
        elif self.skipped_entries == MAX_WARNINGS + 1:
            self.warnings.append(f"{where}: more hostile entries skipped")

    def resolve(self, path: str) -> str | None:
        """Follow symlinks component by component, never above the root (like a chroot)."""
        parts = [p for p in path.split("/") if p not in ("", ".")]
        resolved: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = "/".join([*resolved, part])
            target = self.symlinks.get(candidate)
            if target is None:
                resolved.append(part)
                continue
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                return None
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
        return "/".join(resolved)

    def read(self, path: str) -> bytes | None:
        real = self.resolve(path)
        return None if real is None else self.files.get(real)

    def matching(self, pattern: re.Pattern[str]) -> Iterator[tuple[str, bytes]]:
        for path in sorted(self.files):
            if pattern.search(path):
                yield path, self.files[path]


@dataclass
class _Held:
    """Bytes of one kind kept in memory, the merged lower layers' and this layer's, counted
    before they are kept: a hostile layer is refused at the limit, not read until memory
    runs out."""

    limit: int
    what: str
    total: int = 0

    def add(self, size: int, where: str) -> None:
        self.total += size
        if self.total > self.limit:
            raise ImageError(f"{where}: {self.what} over {self.limit} bytes")


@dataclass
class _LayerChanges:
    file_bytes: _Held
    symlink_bytes: _Held
    removed: list[str] = field(default_factory=list)  # whiteouts and replaced entries
    opaque: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    go_binaries: dict[str, GoBuildInfo] = field(default_factory=dict)
    rust_binaries: dict[str, tuple[Crate, ...]] = field(default_factory=dict)
    java_archives: dict[str, tuple[JavaArtifact, ...]] = field(default_factory=dict)

    def findings_tables(self) -> tuple[dict[str, Any], ...]:
        """The per-path results read from file contents (a hard link shares them)."""
        return (self.go_binaries, self.rust_binaries, self.java_archives)

    def reserve_file(self, path: str, size: int, where: str) -> None:
        """Count a wanted file of `size` bytes at `path` before it is read."""
        self.file_bytes.add(size - len(self.files.get(path, b"")), where)

    def add_symlink(self, path: str, target: str, where: str) -> None:
        self.symlink_bytes.add(len(target) - len(self.symlinks.get(path, "")), where)
        self.symlinks[path] = target


def decompressed(stream: IO[bytes], where: str) -> IO[bytes]:
    """The layer tar inside `stream`, by its first bytes: gzip, zstd or plain."""
    buffered = io.BufferedReader(cast(Any, stream), 1 << 16)
    head = buffered.peek(4)[:4]
    if head.startswith(_GZIP_MAGIC):
        return cast(IO[bytes], gzip.GzipFile(fileobj=buffered, mode="rb"))
    if head.startswith(_ZSTD_MAGIC):
        try:
            import zstandard
        except ImportError:
            raise ImageError(
                f"{where}: zstd-compressed layer, and the zstandard package is not installed"
            ) from None
        reader = zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)
        return cast(IO[bytes], reader)
    return buffered


def _read_wanted(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    path: str,
    wanted: Wanted,
    changes: _LayerChanges,
    where: str,
) -> None:
    if member.size > wanted.limit and wanted.whole:
        raise ImageError(
            f"{where}: {path} is {member.size} bytes, over the {wanted.limit} "
            "byte limit for it; refusing to read it in part"
        )
    changes.reserve_file(path, min(member.size, wanted.limit), where)
    handle = tar.extractfile(member)
    changes.files[path] = b"" if handle is None else handle.read(wanted.limit)


def _read_executable(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    path: str,
    base: ImageFiles,
    changes: _LayerChanges,
    where: str,
) -> None:
    """Go build info and cargo-auditable crates of an executable regular file."""
    if not member.mode & _EXECUTABLE_BITS or member.size < 1024:
        return
    handle = tar.extractfile(member)
    if handle is None:
        return
    head = handle.read(4)
    if not looks_like_executable(head):
        return
    if member.size > MAX_GO_BINARY:
        base.warnings.append(
            f"{where}: {path} is a {member.size} byte executable, over the {MAX_GO_BINARY} "
            "byte limit: not read for Go build info or Rust crates"
        )
        return
    data = head + handle.read()
    go_info = read_build_info(data)
    if go_info is not None:
        changes.go_binaries[path] = go_info
    crates = read_auditable_crates(data)
    if crates is not None:
        changes.rust_binaries[path] = crates


def _read_java_archive(
    tar: tarfile.TarFile, member: tarfile.TarInfo, path: str, base: ImageFiles, where: str
) -> tuple[JavaArtifact, ...] | None:
    if member.size > MAX_ARCHIVE_BYTES:
        base.warnings.append(
            f"{where}: {path} is {member.size} bytes, over the {MAX_ARCHIVE_BYTES} byte "
            "limit for a Java archive: its artifacts are not listed"
        )
        return None
    handle = tar.extractfile(member)
    if handle is None:
        return None
    artifacts, problems = read_java_archive(handle.read(), path)
    for problem in problems:
        # An image full of hostile archives: the first problems are named, the rest counted.
        base.java_problems += 1
        if base.java_problems <= MAX_JAVA_PROBLEMS:
            base.warnings.append(f"{where}: {problem}")
        elif base.java_problems == MAX_JAVA_PROBLEMS + 1:
            base.warnings.append(f"{where}: more Java archive problems not listed")
    return artifacts


def _entries(tar: tarfile.TarFile, where: str) -> Iterator[tarfile.TarInfo]:
    """The layer's entries, at most MAX_LAYER_ENTRIES. tarfile keeps every entry it read in
    `members`, even when streaming: emptied as it goes, so memory stays flat."""
    count = 0
    while (member := tar.next()) is not None:
        tar.members = []  # type: ignore[attr-defined]  # real, though typeshed omits it
        count += 1
        if count > MAX_LAYER_ENTRIES:
            raise ImageError(f"{where}: more than {MAX_LAYER_ENTRIES} entries in one layer")
        yield member


def _layer_changes(tar: tarfile.TarFile, base: ImageFiles, where: str) -> _LayerChanges:
    changes = _LayerChanges(
        _Held(MAX_TOTAL_WANTED_BYTES, "package data"),
        _Held(MAX_SYMLINK_BYTES, "symlink targets"),
    )
    changes.file_bytes.add(sum(len(c) for c in base.files.values()), where)
    changes.symlink_bytes.add(sum(len(t) for t in base.symlinks.values()), where)
    for member in _entries(tar, where):
        path = normalise_entry_path(member.name)
        if path is None:
            base.skip_entry(where, member.name, "that leaves the image root")
            continue
        if member.issym() and len(member.linkname) > MAX_SYMLINK_TARGET:
            too_long = f"whose symlink target is over {MAX_SYMLINK_TARGET} characters"
            base.skip_entry(where, member.name, too_long)
            continue
        directory, name = posixpath.split(path)
        if name == OPAQUE_MARKER:
            changes.opaque.append(directory)
            continue
        if name.startswith(WHITEOUT_PREFIX):
            changes.removed.append(posixpath.join(directory, name[len(WHITEOUT_PREFIX) :]))
            continue
        changes.removed.append(path)  # an entry replaces whatever a lower layer had there
        if member.issym():
            changes.add_symlink(path, member.linkname, where)
        elif member.islnk():
            target = normalise_entry_path(member.linkname)
            content = None if target is None else changes.files.get(target, base.files.get(target))
            if content is not None and wanted_file(path) is not None:
                changes.reserve_file(path, len(content), where)
                changes.files[path] = content
            tables = zip(changes.findings_tables(), _findings_tables(base), strict=True)
            for table, base_table in tables:
                found = None if target is None else table.get(target, base_table.get(target))
                if found is not None:
                    table[path] = found
        elif member.isfile():
            wanted = wanted_file(path)
            if wanted is not None:
                _read_wanted(tar, member, path, wanted, changes, where)
            elif path.lower().endswith(ARCHIVE_SUFFIXES):
                artifacts = _read_java_archive(tar, member, path, base, where)
                if artifacts is not None:
                    changes.java_archives[path] = artifacts
            else:
                _read_executable(tar, member, path, base, changes, where)
    return changes


def _findings_tables(state: ImageFiles) -> tuple[dict[str, Any], ...]:
    return (state.go_binaries, state.rust_binaries, state.java_archives)


def _under(path: str, directory: str) -> bool:
    return directory == "" or path.startswith(directory + "/")


def _apply(state: ImageFiles, changes: _LayerChanges, where: str) -> None:
    tables: tuple[dict[str, Any], ...] = (state.files, state.symlinks, *_findings_tables(state))
    stored_dirs = {posixpath.dirname(p) for table in tables for p in table}
    ancestors: set[str] = set()
    for directory in stored_dirs:
        while directory and directory not in ancestors:
            ancestors.add(directory)
            directory = posixpath.dirname(directory)
    hidden = [d for d in changes.removed if d in ancestors]
    hidden += [d for d in changes.opaque if d in ancestors or d == ""]
    for table in tables:
        gone = set(changes.removed) & table.keys()
        if hidden:
            gone |= {p for p in table if any(_under(p, d) for d in hidden)}
        for path in gone:
            del table[path]
    state.files.update(changes.files)
    state.symlinks.update(changes.symlinks)
    for table, changed in zip(_findings_tables(state), changes.findings_tables(), strict=True):
        table.update(changed)
    if len(state.symlinks) > MAX_SYMLINKS:
        raise ImageError(f"{where}: more than {MAX_SYMLINKS} symlinks")


LayerOpener = Callable[[], tuple[IO[bytes], Callable[[], None]]]


def apply_layer(state: ImageFiles, tar_stream: IO[bytes], where: str) -> None:
    """Read one (decompressed) layer tar and merge it into `state`."""
    try:
        with tarfile.open(fileobj=tar_stream, mode="r|") as tar:
            changes = _layer_changes(tar, state, where)
    except ImageError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error, ValueError) as error:
        raise ImageError(f"{where}: corrupt or truncated layer ({error})") from None
    except Exception as error:  # zstandard raises its own ZstdError
        if type(error).__name__ == "ZstdError":
            raise ImageError(f"{where}: corrupt zstd layer ({error})") from None
        raise
    _apply(state, changes, where)
