"""Registry credentials from a docker config.json (`--registry-config` or
$DOCKER_CONFIG/config.json, else ~/.docker/config.json) and WWW-Authenticate challenges.
Credentials never appear in messages."""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeproof.bounded import UnreadableFile, read_bounded
from kubeproof.images.errors import ImageError
from kubeproof.inventory.objects import as_dict, as_str

MAX_CONFIG_BYTES = 4 << 20  # a docker config.json with many registries is some KiB
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HELPER_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"


@dataclass(frozen=True)
class Challenge:
    scheme: str  # basic or bearer (lower case)
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


def default_config_path() -> Path:
    directory = os.environ.get("DOCKER_CONFIG")
    return Path(directory) / "config.json" if directory else Path.home() / ".docker" / "config.json"


def _config_keys(registry: str) -> list[str]:
    if registry in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        return [DOCKER_HUB_KEY, "docker.io", "index.docker.io", "registry-1.docker.io"]
    return [
        registry,
        f"https://{registry}",
        f"http://{registry}",
        f"https://{registry}/v2/",
        f"https://{registry}/v1/",
    ]


def load_credentials(registry: str, config_path: Path | None) -> Credentials | None:
    """The credentials for `registry` in a docker config.json, if any. A named config file
    that is missing or malformed is an error; the default one may be absent."""
    path = config_path or default_config_path()
    if config_path is None and not path.is_file():
        return None
    if not path.exists():  # anything else (a directory, a pipe) is refused by the reader
        raise ImageError(f"registry config {path}: no such file")
    try:
        config = json.loads(read_bounded(path, MAX_CONFIG_BYTES, f"registry config {path}"))
    except UnreadableFile as refused:
        raise ImageError(str(refused)) from None
    except (ValueError, RecursionError):  # UnicodeDecodeError included; nested too deeply
        raise ImageError(f"registry config {path}: not valid JSON") from None
    helper = _helper_name(as_dict(config), registry)
    if helper:
        return _helper_credentials(helper, registry, path)
    return credentials_in_auths(
        as_dict(as_dict(config).get("auths")), registry, f"registry config {path}"
    )


def _helper_name(config: dict[str, Any], registry: str) -> str | None:
    """credHelpers names a helper per registry; credsStore one for all registries."""
    helpers = as_dict(config.get("credHelpers"))
    for key in _config_keys(registry):
        name = as_str(helpers.get(key))
        if name:
            return name
    return as_str(config.get("credsStore")) or None


def _helper_credentials(helper: str, registry: str, path: Path) -> Credentials | None:
    """Ask `docker-credential-HELPER get` (the docker credential helper protocol)."""
    if not _HELPER_NAME.match(helper):
        raise ImageError(f"registry config {path}: invalid credential helper name {helper!r}")
    program = shutil.which(f"docker-credential-{helper}")
    if program is None:
        raise ImageError(
            f"registry config {path}: credential helper docker-credential-{helper} is not on PATH"
        )
    server = DOCKER_HUB_KEY if _config_keys(registry)[0] == DOCKER_HUB_KEY else registry
    try:
        answer = subprocess.run(
            [program, "get"], input=server.encode(), capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ImageError(
            f"credential helper docker-credential-{helper} failed ({type(error).__name__})"
        ) from None
    if answer.returncode != 0:
        if b"credentials not found" in answer.stdout + answer.stderr:
            return None
        # Never echo what a helper printed: it may hold a secret.
        raise ImageError(
            f"credential helper docker-credential-{helper} failed for {registry} "
            f"(exit {answer.returncode})"
        )
    try:
        document = as_dict(json.loads(answer.stdout))
    except (ValueError, RecursionError):
        raise ImageError(
            f"credential helper docker-credential-{helper} answered something other than JSON"
        ) from None
    username, secret = as_str(document.get("Username")), as_str(document.get("Secret"))
    if not username or secret is None:
        return None
    if username == "<token>":
        raise ImageError(
            f"credential helper docker-credential-{helper} gave an identity "
            f"token for {registry}; identity tokens are not supported yet"
        )
    return Credentials(username, secret)


def credentials_in_auths(auths: dict[str, Any], registry: str, where: str) -> Credentials | None:
    """The entry for `registry` in a docker config's `auths` (a config.json, or the same
    document inside a pull Secret); `where` names that document in errors."""
    for key in _config_keys(registry):
        entry = as_dict(auths.get(key))
        if not entry:
            continue
        username, password = as_str(entry.get("username")), as_str(entry.get("password"))
        encoded = as_str(entry.get("auth"))
        if encoded:
            try:
                decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise ImageError(
                    f"{where}: the auth entry for {key} is not base64 of user:password"
                ) from None
            username, _, password = decoded.partition(":")
        if username and password is not None:
            return Credentials(username, password)
    return None
