"""The policy file: what loads, and that every mistake names its field."""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from admission.cosign import new_key, public_pem
from admission.webhook_tls import make_tls
from kubeproof.admission.policy import PolicyError, load_policy, parse_policy
from kubeproof.cli.main import main
from kubeproof.cli.webhook import MAX_BATCH, MAX_SECONDS, _positive_float, _positive_int

BASE: dict[str, Any] = {
    "apiVersion": "kubeproof.dev/v1alpha1",
    "kind": "AdmissionPolicy",
    "enforce": {"frameworks": ["pss-restricted"]},
}


def with_changes(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


def test_full_policy_loads_with_every_section() -> None:
    policy = parse_policy(
        with_changes(
            enforce={
                "frameworks": ["pss-baseline"],
                "checks": ["workload.image-latest-tag"],
                "skipChecks": ["pss.host-ports"],
            },
            defaultMode="warn",
            namespaces=[
                {"names": ["prod-*"], "mode": "enforce"},
                {"selector": {"matchLabels": {"tier": "sandbox"}}, "mode": "off"},
            ],
            exemptions={
                "namespaces": ["kube-*"],
                "serviceAccounts": ["ci:deployer"],
                "usernames": ["admin@example.com"],
            },
            images={"allowedRegistries": ["ghcr.example/*"], "requireDigest": True},
            failClosed=False,
        )
    )
    ids = {c.id for c in policy.checks}
    assert "pss.privileged" in ids and "workload.image-latest-tag" in ids
    assert "pss.host-ports" not in ids
    assert "workload.image-digest" in ids  # requireDigest reuses the catalogue check
    assert policy.framework_pss_level == "baseline"
    assert policy.default_mode == "warn" and policy.fail_closed is False
    assert policy.uses_namespace_labels


def test_namespace_modes_first_match_wins_and_selectors_need_labels() -> None:
    policy = parse_policy(
        with_changes(
            namespaces=[
                {"names": ["prod-*"], "mode": "enforce"},
                {"names": ["*"], "selector": {"matchLabels": {"tier": "dev"}}, "mode": "warn"},
                {"names": ["sandbox"], "mode": "off"},
            ],
            defaultMode="audit",
        )
    )
    assert policy.mode_for("prod-eu", {"tier": "dev"}) == "enforce"
    assert policy.mode_for("team-a", {"tier": "dev"}) == "warn"
    # Labels unknown: the selector cannot be shown to match, so the default applies.
    assert policy.mode_for("team-a", None) == "audit"
    assert policy.mode_for("sandbox", {}) == "off"
    assert policy.mode_for("other", {}) == "audit"


def test_exemptions_match_namespace_user_and_service_account() -> None:
    policy = parse_policy(
        with_changes(
            exemptions={
                "namespaces": ["infra-*"],
                "serviceAccounts": ["ci:deploy-*"],
                "usernames": ["break-glass"],
            }
        )
    )
    exemptions = policy.exemptions
    assert exemptions.reason("infra-logging", "alice")
    assert exemptions.reason("team-a", "break-glass")
    assert exemptions.reason("team-a", "system:serviceaccount:ci:deploy-prod")
    assert exemptions.reason("team-a", "system:serviceaccount:ci:other") is None
    assert exemptions.reason("team-a", "alice") is None


def test_checks_that_need_other_objects_are_left_to_scan() -> None:
    policy = parse_policy(with_changes(enforce={"frameworks": ["soc2"]}))
    assert "network.namespace-without-network-policy" in policy.left_to_scan  # namespace scope
    assert "network.workload-ingress-not-isolated" in policy.left_to_scan  # needs NetworkPolicy
    assert "availability.missing-pdb" in policy.left_to_scan  # needs PodDisruptionBudget
    assert "workload.runs-as-root" in {c.id for c in policy.checks}
    assert all(c.spec.scope in ("container", "workload") for c in policy.checks)
    assert all(not c.spec.needs for c in policy.checks)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], "not a mapping"),
        (with_changes(apiVersion="v1"), "apiVersion must be kubeproof.dev/v1alpha1"),
        (with_changes(kind="Policy"), "kind must be AdmissionPolicy"),
        (with_changes(enforcement={}), "unknown field enforcement"),
        (with_changes(enforce={"frameworks": ["pss-strict"]}), "enforce.frameworks[0]"),
        (with_changes(enforce={"checks": ["pss.nope"]}), "enforce.checks[0]: unknown check"),
        (
            with_changes(enforce={"frameworks": "pss-restricted"}),
            "enforce.frameworks is not a list",
        ),
        (with_changes(enforce={"framework": ["x"]}), "enforce.framework: unknown field"),
        (with_changes(enforce={}), "nothing to enforce"),
        (with_changes(defaultMode="block"), "defaultMode: 'block' is not a mode"),
        (with_changes(namespaces=[{"names": ["a"]}]), "namespaces[0].mode is missing"),
        (with_changes(namespaces=[{"mode": "warn"}]), "namespaces[0] needs names or selector"),
        (
            with_changes(
                namespaces=[{"names": ["a"], "mode": "warn"}, {"names": [1], "mode": "off"}]
            ),
            "namespaces[1].names[0] is not a non-empty string",
        ),
        (
            with_changes(namespaces=[{"selector": {"matchLabels": []}, "mode": "off"}]),
            "namespaces[0].selector.matchLabels is not a mapping",
        ),
        (
            with_changes(
                namespaces=[
                    {
                        "selector": {"matchExpressions": [{"key": "a", "operator": "In"}]},
                        "mode": "off",
                    }
                ]
            ),
            "namespaces[0].selector.matchExpressions[0] uses In without values",
        ),
        (with_changes(exemptions={"serviceAccounts": ["ci"]}), "exemptions.serviceAccounts[0]"),
        (with_changes(exemptions=[]), "exemptions is not a mapping"),
        (with_changes(images={"requireDigest": "yes"}), "images.requireDigest: 'yes' is not true"),
        (with_changes(images={"allowedRepositories": ["nginx"]}), "images.allowedRepositories[0]"),
        (with_changes(images={"registries": []}), "images.registries: unknown field"),
        (with_changes(failClosed="no"), "failClosed: 'no' is not true or false"),
    ],
)
def test_mistakes_name_the_field(data: Any, expected: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(data, "policy.yaml")
    assert expected in str(raised.value)
    assert str(raised.value).startswith("policy policy.yaml: ")


def test_image_rules_alone_are_a_policy() -> None:
    policy = parse_policy(with_changes(enforce=None, images={"allowedRegistries": ["r.example"]}))
    assert policy.checks == () and policy.images.restricts_sources


def test_load_policy_reports_yaml_line_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: kubeproof.dev/v1alpha1\nkind: [\n")
    with pytest.raises(PolicyError, match=r"policy .*broken.yaml:\d+: invalid YAML"):
        load_policy(broken)
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy(binary)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        # 6,000 copies of 400 KiB once the policy is hashed: 2.4 GB from a 430 KB file.
        (
            "exemptions:\n  usernames: [&a " + "x" * (400 << 10) + ", " + "*a, " * 6000 + "]\n",
            "alias",
        ),
        ("[" * 100_000, "nesting"),
    ],
    ids=["alias-bomb", "deep"],
)
def test_a_hostile_policy_is_refused_by_name(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=f"policy {path}.*{problem}"):
        load_policy(path)


def test_check_policy_command_shows_what_is_judged_and_left_to_scan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(with_changes(enforce={"frameworks": ["soc2"]})))
    assert main(["webhook", "check-policy", str(policy)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "    pss.privileged" in out
    assert "left to scan" in out and "network.workload-ingress-not-isolated" in out
    policy.write_text(yaml.safe_dump(with_changes(defaultMode="deny")))
    assert main(["webhook", "check-policy", str(policy)]) == 2
    assert "defaultMode: 'deny' is not a mode" in capsys.readouterr().err


def test_serve_refuses_a_kubeconfig_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(BASE))
    arguments = ["webhook", "serve", "--policy", str(policy), "--tls-cert", "c", "--tls-key", "k"]
    missing = str(tmp_path / "missing.kubeconfig")
    assert main([*arguments, "--namespace-labels", "--kubeconfig", missing]) == 2
    assert "no such file" in capsys.readouterr().err


def test_check_policy_lists_the_image_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = public_pem(new_key())
    images = {
        "allowedRegistries": ["registry.example.com"],
        "allowedRepositories": ["docker.io/library/busybox"],
        "requireDigest": True,
        "registryErrors": "fail-open",
        "signatures": [
            {"repositories": ["registry.example.com/team/*"], "keys": [key]},
            {"repositories": ["registry.example.com/lab/*"], "keys": [key], "required": False},
        ],
    }
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(with_changes(images=images)))
    assert main(["webhook", "check-policy", str(policy)]) == 0
    out = capsys.readouterr().out
    fingerprint = load_policy(policy).images.signatures[0].keys[0].fingerprint
    assert "    images.allowed-source\n    images.signed\n" in out
    assert (
        "allowed registries: registry.example.com; allowed repositories: "
        "docker.io/library/busybox" in out
    )
    assert "digest pinning: required (workload.image-digest)" in out
    signed_rule = "signatures[0] registry.example.com/team/*: required, signed by key"
    assert f"{signed_rule} {fingerprint}" in out
    assert "signatures[1] registry.example.com/lab/*: not enforced (required: false)" in out
    assert "registry errors: fail-open" in out
    policy.write_text(yaml.safe_dump(BASE))
    assert main(["webhook", "check-policy", str(policy)]) == 0
    out = capsys.readouterr().out
    assert "digest pinning: not required" in out and "signatures: none required" in out


def test_the_policy_digest_follows_its_meaning_not_its_layout(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(BASE))
    digest = load_policy(policy).digest
    assert len(digest) == 64
    policy.write_text("# a comment\n" + yaml.safe_dump(BASE, default_flow_style=True))
    assert load_policy(policy).digest == digest
    policy.write_text(yaml.safe_dump(with_changes(defaultMode="warn")))
    assert load_policy(policy).digest != digest


def test_serve_refuses_a_store_it_cannot_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tls = make_tls(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(BASE))
    arguments = ["webhook", "serve", "--policy", str(policy), "--tls-cert", str(tls.cert)]
    arguments += ["--tls-key", str(tls.key), "--port", "0"]
    closed = "postgresql://kubeproof:hunter2pw@127.0.0.1:1/evidence"
    assert main([*arguments, "--db", closed]) == 2
    err = capsys.readouterr().err
    assert "cannot open database" in err and "hunter2pw" not in err
    assert main([*arguments, "--db", str(tmp_path / "e.db"), "--cluster-name", " "]) == 2
    assert "--cluster-name must not be empty" in capsys.readouterr().err


@given(st.text(max_size=30))
def test_interval_and_batch_flags_are_numbers_or_clear_errors(text: str) -> None:
    try:
        seconds = _positive_float(text)
    except argparse.ArgumentTypeError as error:
        assert str(error).startswith("not a number of seconds")
    else:
        assert 0 < seconds <= MAX_SECONDS
    try:
        count = _positive_int(text)
    except argparse.ArgumentTypeError as error:
        assert str(error).startswith("not a whole number")
    else:
        assert 1 <= count <= MAX_BATCH and str(count) == text.lstrip("0")
    assert _positive_float("2.5") == 2.5 and _positive_int("500") == 500
