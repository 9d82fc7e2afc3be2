"""Kubeconfig loading as kubectl does it: merging, contexts, credentials, in-cluster, errors."""

from __future__ import annotations

import base64
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeproof.cli.main import main
from kubeproof.sources.kubeconfig import (
    ClusterConnection,
    KubeconfigError,
    load_connection,
    ssl_context,
)

TOKEN = "kp-test-" + "t0ken-value-never-printed"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def config(
    *,
    current: str | None = "dev",
    server: Any = "https://127.0.0.1:6443",
    user: dict[str, Any] | None = None,
    cluster: dict[str, Any] | None = None,
    name: str = "dev",
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": f"{name}-cluster", "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": f"{name}-user", "user": user if user is not None else {}}],
        "contexts": [
            {"name": name, "context": {"cluster": f"{name}-cluster", "user": f"{name}-user"}}
        ],
    }
    if current is not None:
        data["current-context"] = current
    return data


def write(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_current_context_token_and_insecure(tmp_path: Path) -> None:
    path = write(
        tmp_path / "kc",
        config(user={"token": TOKEN}, cluster={"insecure-skip-tls-verify": True}),
    )
    connection = load_connection(str(path))
    assert connection.server == "https://127.0.0.1:6443"
    assert connection.cluster_name == "dev-cluster"
    assert connection.context_name == "dev"
    assert connection.token == TOKEN
    assert connection.insecure_skip_tls_verify
    assert TOKEN not in repr(connection)
    assert ssl_context(connection).verify_mode == ssl.CERT_NONE


def test_named_context_and_relative_paths_resolve_next_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.crt").write_text("x")
    (tmp_path / "certs" / "token").write_text(TOKEN + "\n")
    data = config(current="dev")
    data["clusters"].append(
        {
            "name": "prod-cluster",
            "cluster": {"server": "https://prod:443", "certificate-authority": "certs/ca.crt"},
        }
    )
    data["users"].append({"name": "prod-user", "user": {"tokenFile": "certs/token"}})
    data["contexts"].append(
        {"name": "prod", "context": {"cluster": "prod-cluster", "user": "prod-user"}}
    )
    connection = load_connection(str(write(tmp_path / "kc", data)), "prod")
    assert connection.cluster_name == "prod-cluster"
    assert connection.ca_file == str(tmp_path / "certs" / "ca.crt")
    assert connection.token == TOKEN


def test_kubeconfig_env_merges_files_first_definition_wins(tmp_path: Path) -> None:
    first = write(tmp_path / "a", config(current=None, server="https://first:6443"))
    second = write(tmp_path / "b", config(current="dev", server="https://second:6443"))
    env = {"KUBECONFIG": f"{first}:{tmp_path / 'missing'}:{second}"}
    connection = load_connection(environ=env)
    # current-context comes from b (a has none); the cluster from a, which defined it first.
    assert connection.server == "https://first:6443"
    assert connection.source == f"{first}:{second}"


def test_default_path_is_home_kube_config(tmp_path: Path) -> None:
    (tmp_path / ".kube").mkdir()
    write(tmp_path / ".kube" / "config", config())
    assert load_connection(environ={}, home=tmp_path).context_name == "dev"


def test_in_cluster_when_there_is_no_kubeconfig(tmp_path: Path) -> None:
    accounts = tmp_path / "sa"
    accounts.mkdir()
    (accounts / "token").write_text(TOKEN)
    (accounts / "ca.crt").write_text("x")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    connection = load_connection(environ=env, home=tmp_path, service_account_dir=accounts)
    assert connection.server == "https://10.96.0.1:443"
    assert connection.cluster_name == "in-cluster"
    assert connection.token == TOKEN
    assert connection.ca_file == str(accounts / "ca.crt")


@pytest.mark.parametrize(
    ("data", "context", "message"),
    [
        (config(current=None), None, "no current-context"),
        (config(), "other", "no context 'other'"),
        (config(server=None), None, "has no server"),
        (config(server="ftp://x"), None, "not an http(s) URL"),
        (config(server="https://x:port"), None, "not a valid URL"),
        (config(server="https://[::1"), None, "not a valid URL"),
        (config(user={"tokenFile": "~no-such-user-kp/t"}), None, "no such file"),
        (config(user={"client-certificate-data": "!!"}), None, "not valid base64"),
        (config(user={"client-certificate-data": b64(b"c")}), None, "no client key"),
        (config(user={"client-key-data": b64(b"k")}), None, "no client certificate"),
        (config(user={"tokenFile": "nope"}), None, "tokenFile 'nope': no such file"),
        (config(cluster={"certificate-authority": "nope"}), None, "certificate-authority"),
        (config(user={"exec": {"command": "aws"}}), None, "exec credential plugin"),
        ("a: [1\n", None, "not valid YAML at line"),
        ("- 1\n", None, "not a mapping"),
    ],
)
def test_errors_name_the_file_and_what_is_wrong(
    tmp_path: Path, data: Any, context: str | None, message: str
) -> None:
    path = write(tmp_path / "kc", data)
    with pytest.raises(KubeconfigError) as error:
        load_connection(str(path), context)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_context_naming_an_undefined_user_or_cluster(tmp_path: Path) -> None:
    data = config()
    data["contexts"][0]["context"]["user"] = "ghost"
    with pytest.raises(KubeconfigError, match="user 'ghost' is not defined"):
        load_connection(str(write(tmp_path / "kc", data)))
    data["contexts"][0]["context"]["cluster"] = "gone"
    with pytest.raises(KubeconfigError, match="cluster 'gone' is not defined"):
        load_connection(str(write(tmp_path / "kc", data)))


def test_no_kubeconfig_anywhere(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="no kubeconfig found"):
        load_connection(environ={}, home=tmp_path)
    with pytest.raises(KubeconfigError, match="no such file"):
        load_connection(str(tmp_path / "missing"))
    with pytest.raises(KubeconfigError, match=f"kubeconfig {tmp_path}: Is a directory"):
        load_connection(str(tmp_path))


def test_bad_pem_data_is_a_kubeconfig_error_that_never_quotes_it(tmp_path: Path) -> None:
    key = b"-----BEGIN PRIVATE KEY-----\nnot-a-real-key-" + TOKEN.encode() + b"\n"
    data = config(
        user={"client-certificate-data": b64(b"garbage"), "client-key-data": b64(key)},
        cluster={"certificate-authority-data": b64(b"not a pem")},
    )
    connection = load_connection(str(write(tmp_path / "kc", data)))
    with pytest.raises(KubeconfigError) as error:
        ssl_context(connection)
    assert "certificate authority" in str(error.value)
    connection = ClusterConnection(
        server="https://x",
        cluster_name="c",
        context_name="dev",
        source="kc",
        insecure_skip_tls_verify=True,
        client_cert_data=b"garbage",
        client_key_data=key,
    )
    with pytest.raises(KubeconfigError) as error:
        ssl_context(connection)
    assert "client certificate and key" in str(error.value)
    assert TOKEN not in str(error.value)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_embedded_client_certificate_is_loaded_and_temp_files_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-subj", "/CN=t", "-days", "1"],
        check=True, capture_output=True,
    )  # fmt: skip
    data = config(
        user={
            "client-certificate-data": b64(cert.read_bytes()),
            "client-key-data": b64(key.read_bytes()),
        },
        cluster={"certificate-authority-data": b64(cert.read_bytes())},
    )
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    context = ssl_context(load_connection(str(write(tmp_path / "kc", data))))
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert list(temp.iterdir()) == []  # key material did not outlive loading


def test_cli_turns_kubeconfig_errors_into_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "kc", config(user={"token": TOKEN}))
    assert main(["scan", "--cluster", "--kubeconfig", str(path), "--context", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no context 'nope'" in err and "Traceback" not in err and TOKEN not in err
    assert main(["scan"]) == 2
    assert "give PATH... or --cluster" in capsys.readouterr().err
    assert main(["scan", str(tmp_path), "--cluster"]) == 2
    assert main(["scan", str(tmp_path), "--context", "x"]) == 2


# --- hostile input --------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=12)
keys = st.sampled_from(
    [
        "clusters", "users", "contexts", "current-context", "name", "cluster", "user",
        "context", "server", "token", "tokenFile", "certificate-authority",
        "certificate-authority-data", "client-certificate-data", "client-key-data",
        "client-certificate", "client-key", "insecure-skip-tls-verify", "as", "as-groups",
        "exec",
    ]
)  # fmt: skip
yamlish = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys | st.text(max_size=6), inner),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(data=st.dictionaries(keys, yamlish, max_size=6), context=st.none() | st.text(max_size=6))
def test_random_kubeconfigs_raise_only_kubeconfig_error(
    tmp_path_factory: pytest.TempPathFactory, data: dict[str, Any], context: str | None
) -> None:
    path = tmp_path_factory.mktemp("kc") / "config"
    path.write_text(yaml.safe_dump(data))
    try:
        connection = load_connection(str(path), context or None, environ={})
        ssl_context(connection)
    except KubeconfigError:
        pass
