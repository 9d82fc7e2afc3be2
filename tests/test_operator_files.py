"""Every file an operator hands kubeproof (configs, keys, policies, exceptions, VEX) is
read through one bounded reader: an oversized one is refused by name, not loaded."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from kubeproof import bounded, risk_acceptance
from kubeproof.admission import policy, signatures, trustroot
from kubeproof.audit import webhook_config
from kubeproof.cli.main import build_parser
from kubeproof.images import auth
from kubeproof.notify import config as notify_config
from kubeproof.sources import kubeconfig
from kubeproof.store import head, signing
from kubeproof.vulndb import vex

LIMIT = 64  # bytes: each module's own limit is patched down to this


def webhook_manifests(option: str, path: Path) -> int:
    """`kubeproof webhook manifests OPTION PATH`, raising its usage error."""
    arguments = build_parser("webhook").parse_args(["webhook", "manifests", option, str(path)])
    code: int = arguments.run(arguments)
    return code


READERS: list[tuple[str, Any, str, Callable[[Path], object]]] = [
    ("notify config", notify_config, "MAX_CONFIG_BYTES", notify_config.load_config),
    ("registry config", auth, "MAX_CONFIG_BYTES", lambda p: auth.load_credentials("r.test", p)),
    (
        "audit CA file",
        bounded,
        "MAX_CA_BUNDLE_BYTES",
        lambda p: webhook_config.webhook_kubeconfig("https://audit.test", ca_file=p),
    ),
    (
        "kubeconfig",
        kubeconfig,
        "MAX_KUBECONFIG_BYTES",
        lambda p: kubeconfig.load_connection(str(p)),
    ),
    ("policy key", signatures, "MAX_KEY_FILE_BYTES", lambda p: signatures.load_policy_key(str(p))),
    ("admission policy", policy, "MAX_POLICY_BYTES", policy.load_policy),
    (
        "webhook manifests policy",
        policy,
        "MAX_POLICY_BYTES",
        lambda p: webhook_manifests("--policy", p),
    ),
    (
        "webhook manifests CA bundle",
        bounded,
        "MAX_CA_BUNDLE_BYTES",
        lambda p: webhook_manifests("--ca-bundle", p),
    ),
    (
        "trusted root",
        trustroot,
        "MAX_TRUSTED_ROOT_BYTES",
        lambda p: trustroot.load_trusted_root(str(p)),
    ),
    ("VEX", vex, "MAX_BYTES", lambda p: vex.load_vex([p])),
    (
        "exceptions",
        risk_acceptance,
        "_FILE_LIMIT",
        lambda p: risk_acceptance.load_exceptions_file(
            str(p), risk_acceptance.Limits(today=date(2026, 1, 1))
        ),
    ),
    ("ledger head", head, "_MAX_FILE", lambda p: head.read_head(str(p))),
    ("signing key", signing, "_MAX_KEY_FILE", lambda p: signing.load_signer(str(p))),
]


@pytest.mark.parametrize(("name", "module", "limit", "read"), READERS, ids=[r[0] for r in READERS])
def test_an_oversized_file_is_refused_by_name(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    module: Any,
    limit: str,
    read: Callable[[Path], object],
) -> None:
    monkeypatch.setattr(module, limit, LIMIT)
    path = tmp_path / "oversized"
    path.write_text("# " + "x" * LIMIT + "\n")
    with pytest.raises(Exception) as raised:  # each module's own error type
        read(path)
    assert str(path) in str(raised.value)
    assert f"is larger than {LIMIT} bytes" in str(raised.value)
    assert raised.type.__module__.startswith("kubeproof")


@pytest.mark.parametrize(("name", "module", "limit", "read"), READERS, ids=[r[0] for r in READERS])
def test_a_missing_file_is_named_with_the_reason(
    tmp_path: Path, name: str, module: Any, limit: str, read: Callable[[Path], object]
) -> None:
    path = tmp_path / "missing"
    with pytest.raises(Exception) as raised:
        read(path)
    assert str(path) in str(raised.value)
    assert raised.type.__module__.startswith("kubeproof")
