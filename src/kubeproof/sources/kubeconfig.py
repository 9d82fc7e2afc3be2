"""Where a cluster is and how to log in to it: a kubeconfig, read as kubectl reads it, or
the in-cluster service account.

Nothing here logs or prints a token or a key; errors name the file, context, user or
cluster and the field that is wrong, never its value.
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from kubeproof.bounded import UnreadableFile, read_bounded_text
from kubeproof.inventory.objects import as_dict, as_list, as_str

MAX_KUBECONFIG_BYTES = 16 << 20  # generous: embedded certificates for many clusters
MAX_TOKEN_BYTES = 1 << 20  # a bearer token is a few KiB
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
IN_CLUSTER_NAME = "in-cluster"


class KubeconfigError(Exception):
    """The kubeconfig (or in-cluster configuration) cannot be used; says where and why."""


@dataclass(frozen=True)
class ClusterConnection:
    """Everything needed to talk to one API server as one identity."""

    server: str
    cluster_name: str
    context_name: str | None
    source: str  # the file(s) or "in-cluster", for messages
    ca_data: bytes | None = None
    ca_file: str | None = None
    insecure_skip_tls_verify: bool = False
    client_cert_data: bytes | None = field(default=None, repr=False)
    client_cert_file: str | None = None
    client_key_data: bytes | None = field(default=None, repr=False)
    client_key_file: str | None = None
    token: str | None = field(default=None, repr=False)
    impersonate_user: str | None = None
    impersonate_groups: tuple[str, ...] = ()

    def with_impersonation(self, user: str | None) -> ClusterConnection:
        if user is None:
            return self
        return replace(self, impersonate_user=user)


# --- finding and merging kubeconfig files ---------------------------------------------------


@dataclass
class _Entry:
    """A named cluster, user or context and the file it came from (relative paths in it
    are relative to that file, as kubectl resolves them)."""

    body: dict[str, Any]
    origin: Path


@dataclass
class _Merged:
    files: list[Path] = field(default_factory=list)
    clusters: dict[str, _Entry] = field(default_factory=dict)
    users: dict[str, _Entry] = field(default_factory=dict)
    contexts: dict[str, _Entry] = field(default_factory=dict)
    current_context: str | None = None

    @property
    def source(self) -> str:
        return ":".join(str(path) for path in self.files) or "(no kubeconfig)"


def load_connection(
    kubeconfig: str | None = None,
    context: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
) -> ClusterConnection:
    """The connection for `context` (or the current one) from --kubeconfig, $KUBECONFIG
    (':'-separated, first definition wins) or ~/.kube/config; the in-cluster service
    account when there is no kubeconfig at all."""
    env = os.environ if environ is None else environ
    if kubeconfig is not None:
        path = Path(kubeconfig)
        if not path.exists():  # anything else (a directory, a pipe) is refused by the reader
            raise KubeconfigError(f"kubeconfig {kubeconfig}: no such file")
        paths = [path]
    elif env.get("KUBECONFIG"):
        # kubectl skips listed files that do not exist.
        paths = [Path(p) for p in env["KUBECONFIG"].split(os.pathsep) if p]
        paths = [p for p in paths if p.is_file()]
    else:
        default = (home or Path.home()) / ".kube" / "config"
        paths = [default] if default.is_file() else []
    if not paths:
        if env.get("KUBERNETES_SERVICE_HOST") and context is None:
            return _in_cluster(env, service_account_dir)
        tried = "$KUBECONFIG" if env.get("KUBECONFIG") else "~/.kube/config"
        raise KubeconfigError(
            f"no kubeconfig found ({tried}) and not running in a cluster: pass --kubeconfig FILE"
        )
    merged = _Merged()
    for path in paths:
        _merge(merged, path)
    return _resolve(merged, context)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = read_bounded_text(path, MAX_KUBECONFIG_BYTES, f"kubeconfig {path}")
    except UnreadableFile as refused:
        raise KubeconfigError(str(refused)) from None
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError, ValueError) as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise KubeconfigError(f"kubeconfig {path}: not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise KubeconfigError(f"kubeconfig {path}: not a mapping (a kubeconfig is `kind: Config`)")
    return data


def _merge(merged: _Merged, path: Path) -> None:
    data = _read_yaml(path)
    merged.files.append(path)
    for section, key, target in (
        ("clusters", "cluster", merged.clusters),
        ("users", "user", merged.users),
        ("contexts", "context", merged.contexts),
    ):
        for item in as_list(data.get(section)):
            item = as_dict(item)
            name = as_str(item.get("name"))
            if name is not None and name not in target:  # the first file to define it wins
                target[name] = _Entry(as_dict(item.get(key)), path)
    current = as_str(data.get("current-context"))
    if merged.current_context is None and current:
        merged.current_context = current


def _resolve(merged: _Merged, context_name: str | None) -> ClusterConnection:
    source = merged.source
    name = context_name or merged.current_context
    if not name:
        raise KubeconfigError(f"kubeconfig {source}: no current-context; pass --context NAME")
    context = merged.contexts.get(name)
    if context is None:
        known = ", ".join(sorted(merged.contexts)) or "none"
        raise KubeconfigError(f"kubeconfig {source}: no context {name!r} (contexts: {known})")
    where = f"kubeconfig {context.origin}, context {name!r}"
    cluster_name = as_str(context.body.get("cluster"))
    if not cluster_name:
        raise KubeconfigError(f"{where}: names no cluster")
    cluster = merged.clusters.get(cluster_name)
    if cluster is None:
        raise KubeconfigError(f"{where}: cluster {cluster_name!r} is not defined")
    user_name = as_str(context.body.get("user"))
    user = merged.users.get(user_name) if user_name else None
    if user_name and user is None:
        raise KubeconfigError(f"{where}: user {user_name!r} is not defined")
    connection = _cluster_part(cluster, cluster_name, name, source)
    if user is not None:
        connection = _user_part(connection, user, user_name or "")
    return connection


def _cluster_part(entry: _Entry, name: str, context: str, source: str) -> ClusterConnection:
    where = f"kubeconfig {entry.origin}, cluster {name!r}"
    body = entry.body
    server = _server(as_str(body.get("server")), where)
    insecure = body.get("insecure-skip-tls-verify") is True
    return ClusterConnection(
        server=server,
        cluster_name=name,
        context_name=context,
        source=source,
        ca_data=_data(body, "certificate-authority-data", where),
        ca_file=_file(body, "certificate-authority", entry.origin, where),
        insecure_skip_tls_verify=insecure,
    )


def _user_part(connection: ClusterConnection, entry: _Entry, name: str) -> ClusterConnection:
    where = f"kubeconfig {entry.origin}, user {name!r}"
    body = entry.body
    for plugin in ("exec", "auth-provider"):
        if body.get(plugin) is not None:
            raise KubeconfigError(
                f"{where}: uses an {plugin} credential plugin, which kubeproof does not run; "
                "use a kubeconfig with a client certificate or a token"
            )
    token = as_str(body.get("token")) or None
    token_file = _file(body, "tokenFile", entry.origin, where)
    if token is None and token_file is not None:
        token = _read_token(Path(token_file), where)
    cert_data = _data(body, "client-certificate-data", where)
    cert_file = _file(body, "client-certificate", entry.origin, where)
    key_data = _data(body, "client-key-data", where)
    key_file = _file(body, "client-key", entry.origin, where)
    if (cert_data or cert_file) and not (key_data or key_file):
        raise KubeconfigError(f"{where}: has a client certificate but no client key")
    if (key_data or key_file) and not (cert_data or cert_file):
        raise KubeconfigError(f"{where}: has a client key but no client certificate")
    groups = tuple(g for g in as_list(body.get("as-groups")) if isinstance(g, str))
    return replace(
        connection,
        token=token,
        client_cert_data=cert_data,
        client_cert_file=cert_file,
        client_key_data=key_data,
        client_key_file=key_file,
        impersonate_user=as_str(body.get("as")) or None,
        impersonate_groups=groups,
    )


def _server(server: str | None, where: str) -> str:
    if not server:
        raise KubeconfigError(f"{where}: has no server")
    try:
        parts = urlsplit(server if "://" in server else f"https://{server}")
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise KubeconfigError(f"{where}: server is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise KubeconfigError(f"{where}: server is not an http(s) URL")
    return parts.geturl().rstrip("/")


def _data(body: dict[str, Any], key: str, where: str) -> bytes | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise KubeconfigError(f"{where}: {key} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KubeconfigError(f"{where}: {key} is not valid base64") from None


def _file(body: dict[str, Any], key: str, origin: Path, where: str) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise KubeconfigError(f"{where}: {key} is not a file path")
    try:
        path = Path(value).expanduser()
    except RuntimeError:  # ~user for a user that does not exist
        path = Path(value)
    if not path.is_absolute():
        path = origin.parent / path
    if "\0" in value or not path.is_file():
        raise KubeconfigError(f"{where}: {key} {value!r}: no such file")
    return str(path)


def _read_token(path: Path, where: str) -> str:
    try:
        token = read_bounded_text(path, MAX_TOKEN_BYTES, f"token file {path}").strip()
    except UnreadableFile as refused:
        raise KubeconfigError(f"{where}: {refused}") from None
    if not token:
        raise KubeconfigError(f"{where}: token file {path} is empty")
    return token


def _in_cluster(env: Mapping[str, str], directory: Path) -> ClusterConnection:
    where = "in-cluster configuration"
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not port:
        raise KubeconfigError(f"{where}: KUBERNETES_SERVICE_PORT is not set")
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    token = _read_token(directory / "token", where)
    ca = directory / "ca.crt"
    if not ca.is_file():
        raise KubeconfigError(f"{where}: {ca} is missing")
    return ClusterConnection(
        server=_server(f"https://{host}:{port}", where),
        cluster_name=IN_CLUSTER_NAME,
        context_name=None,
        source=IN_CLUSTER_NAME,
        ca_file=str(ca),
        token=token,
    )


# --- TLS ------------------------------------------------------------------------------------


def ssl_context(connection: ClusterConnection) -> ssl.SSLContext:
    """A client TLS context for the connection. Certificate and key data are written to
    0600 files in a private temporary directory only for as long as ssl reads them."""
    where = f"kubeconfig {connection.source}, cluster {connection.cluster_name!r}"
    try:
        if connection.insecure_skip_tls_verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif connection.ca_data is not None:
            context = ssl.create_default_context(cadata=connection.ca_data.decode("ascii"))
        else:
            context = ssl.create_default_context(cafile=connection.ca_file)
    except (ssl.SSLError, ValueError, OSError):
        raise KubeconfigError(f"{where}: the certificate authority is not a valid PEM") from None
    cert, key = connection.client_cert_data, connection.client_key_data
    if cert is None and key is None:
        if connection.client_cert_file and connection.client_key_file:
            _load_chain(context, connection.client_cert_file, connection.client_key_file, where)
        return context
    directory = tempfile.mkdtemp(prefix="kubeproof-")  # mode 0700
    try:
        cert_file = connection.client_cert_file or _private_file(directory, "client.crt", cert)
        key_file = connection.client_key_file or _private_file(directory, "client.key", key)
        _load_chain(context, cert_file, key_file, where)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return context


def _private_file(directory: str, name: str, data: bytes | None) -> str:
    path = os.path.join(directory, name)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data or b"")
    return path


def _load_chain(context: ssl.SSLContext, cert_file: str, key_file: str, where: str) -> None:
    try:
        context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, ValueError, OSError):
        raise KubeconfigError(
            f"{where}: the client certificate and key are not a valid PEM pair"
        ) from None
