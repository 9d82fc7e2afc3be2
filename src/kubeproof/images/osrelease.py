"""Which distribution an image is: os-release (etc/ then usr/lib/), else alpine-release or
debian_version. Parsing never fails: unknown or malformed lines are skipped."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubeproof.images.filesystem import ImageFiles

_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_ESCAPED = re.compile(r"\\([\"\\$`])")


@dataclass(frozen=True)
class OperatingSystem:
    id: str  # debian, alpine, ubuntu ... ("" when unknown)
    version_id: str | None
    pretty_name: str | None = None
    codename: str | None = None
    source: str | None = None  # the file it was read from

    @property
    def distro_qualifier(self) -> str | None:
        """The purl `distro` qualifier: debian-12, alpine-3.19.1."""
        if not self.id or not self.version_id:
            return None
        return f"{self.id}-{self.version_id}"


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        inner = value[1:-1]
        return _ESCAPED.sub(r"\1", inner) if value[0] == '"' else inner
    return _ESCAPED.sub(r"\1", value)


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines as os-release(5) writes them; comments and junk are ignored."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        match = _ASSIGNMENT.match(line.strip())
        if match:
            fields[match.group(1)] = _unquote(match.group(2))
    return fields


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "replace")


def detect_os(files: ImageFiles) -> OperatingSystem | None:
    for path in ("etc/os-release", "usr/lib/os-release"):
        text = _text(files.read(path))
        if text is not None:
            fields = parse_os_release(text)
            if fields.get("ID"):
                return OperatingSystem(
                    fields["ID"].lower(),
                    fields.get("VERSION_ID"),
                    fields.get("PRETTY_NAME"),
                    fields.get("VERSION_CODENAME"),
                    path,
                )
    alpine = _text(files.read("etc/alpine-release"))
    if alpine is not None and alpine.strip():
        return OperatingSystem("alpine", alpine.strip().split()[0], source="etc/alpine-release")
    debian = _text(files.read("etc/debian_version"))
    if debian is not None and debian.strip():
        version = debian.strip().split(".")[0]
        return OperatingSystem(
            "debian", version if version.isdigit() else None, source="etc/debian_version"
        )
    return None
