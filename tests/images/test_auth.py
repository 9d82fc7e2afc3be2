"""Docker config.json credentials and WWW-Authenticate challenges: malformed input gives a
clear error that never shows a secret."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeproof.images.auth import load_credentials, parse_challenge
from kubeproof.images.errors import ImageError
from kubeproof.images.reference import RegistryReference, parse_reference


def test_challenges() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull"'
    )
    assert challenge is not None and challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull",
    }
    basic = parse_challenge('Basic realm="kp"')
    assert basic is not None and (basic.scheme, basic.params) == ("basic", {"realm": "kp"})
    assert parse_challenge("") is None


@given(st.text(max_size=100))
def test_challenge_parsing_never_raises(header: str) -> None:
    parse_challenge(header)


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return path


def test_config_forms(tmp_path: Path) -> None:
    token = base64.b64encode(b"user:pa:ss").decode()
    config = write(
        tmp_path,
        {
            "auths": {
                "https://r.example:5000": {"auth": token},
                "https://index.docker.io/v1/": {"username": "hub", "password": "pw"},
            }
        },
    )
    credentials = load_credentials("r.example:5000", config)
    assert credentials is not None and (credentials.username, credentials.password) == (
        "user",
        "pa:ss",
    )
    assert "pa:ss" not in repr(credentials)
    hub = load_credentials("docker.io", config)
    assert hub is not None and hub.username == "hub"
    assert load_credentials("other.example", config) is None


@pytest.mark.parametrize("content", ["{not json", json.dumps({"auths": {"r": {"auth": "@@"}}})])
def test_malformed_config_is_a_clear_error(tmp_path: Path, content: str) -> None:
    with pytest.raises(ImageError, match=r"registry config .*config\.json"):
        load_credentials("r", write(tmp_path, content))


def test_named_config_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such file"):
        load_credentials("r", tmp_path / "missing.json")
    with pytest.raises(ImageError, match=f"registry config {tmp_path}: Is a directory"):
        load_credentials("r", tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nginx", ("docker.io", "library/nginx", "latest", None)),
        ("localhost:5000/a/b:1", ("localhost:5000", "a/b", "1", None)),
        (
            "127.0.0.1:5000/app@sha256:" + "a" * 64,
            ("127.0.0.1:5000", "app", None, "sha256:" + "a" * 64),
        ),
        ("ghost/app:v2", ("docker.io", "ghost/app", "v2", None)),
    ],
)
def test_registry_references(text: str, expected: tuple[str, str, str | None, str | None]) -> None:
    reference = parse_reference(text)
    assert isinstance(reference, RegistryReference)
    assert (reference.registry, reference.repository, reference.tag, reference.digest) == expected


@pytest.mark.parametrize("text", ["UPPER/case", "a@sha256:123", "a:b:c:d", " a", "a//b"])
def test_bad_references(text: str) -> None:
    with pytest.raises(ImageError):
        parse_reference(text)
