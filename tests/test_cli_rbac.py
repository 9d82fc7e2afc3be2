"""`kubeproof rbac who-can` and `kubeproof rbac subject` as a user runs them: answers with
grant paths in both formats, exit codes, and usage errors without tracebacks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubeproof.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
SHOP = str(ROOT / "examples" / "shop")

RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: deployer, namespace: team}
rules:
- {verbs: [get, update], apiGroups: [apps], resources: [deployments, deployments/scale]}
- {verbs: [get], apiGroups: [""], resources: [secrets], resourceNames: [registry]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ci, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}
subjects:
- {kind: ServiceAccount, name: ci}
- {kind: Group, name: release-managers, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: metrics}
rules: [{verbs: [get], nonResourceURLs: ["/metrics"]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: metrics}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: metrics}
subjects: [{kind: Group, name: "system:serviceaccounts:team", apiGroup: rbac.authorization.k8s.io}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: vendor, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: vendor-operator}
subjects: [{kind: User, name: vendor, apiGroup: rbac.authorization.k8s.io}]
"""


@pytest.fixture
def manifests(tmp_path: Path) -> str:
    path = tmp_path / "rbac.yaml"
    path.write_text(RBAC)
    return str(path)


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main(["rbac", *argv, "-o", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    document: dict[str, Any] = json.loads(captured.out)
    return document


def test_who_can_json_lists_subjects_with_paths(
    manifests: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Options between positionals, as kubectl users write them.
    document = run_json(
        capsys, "who-can", "update", "deployments.apps/scale", "-n", "team", manifests
    )
    assert document["request"] == {
        "verb": "update",
        "apiGroup": "apps",
        "resource": "deployments",
        "subresource": "scale",
        "name": None,
        "namespace": "team",
    }
    subjects = {(s["subject"]["kind"], s["subject"]["name"]) for s in document["subjects"]}
    assert subjects == {("ServiceAccount", "ci"), ("Group", "release-managers")}
    grant = document["subjects"][0]["grants"][0]
    assert grant["path"].startswith("RoleBinding team/ci subjects[")
    assert grant["path"].endswith("-> Role team/deployer rules[0]")
    assert grant["rule"]["origin"] == {
        "kind": "Role",
        "name": "deployer",
        "namespace": "team",
        "index": 0,
        "builtIn": False,
        "aggregatedVia": [],
    }
    assert grant["scope"] == {"namespace": "team"}
    # The binding to a role that is not in the input is unknown, not silently denied.
    assert [u["subject"]["name"] for u in document["unknown"]] == ["vendor"]
    assert document["input"]["complete"] is True


def test_who_can_resource_names_and_non_resource_urls(
    manifests: str, capsys: pytest.CaptureFixture[str]
) -> None:
    named = run_json(
        capsys, "who-can", "get", "secrets", "--name", "registry", "-n", "team", manifests
    )
    assert len(named["subjects"]) == 2
    unnamed = run_json(capsys, "who-can", "list", "secrets", "-n", "team", manifests)
    assert unnamed["subjects"] == []
    urls = run_json(capsys, "who-can", "get", "/metrics", manifests)
    assert urls["request"] == {"verb": "get", "nonResourceURL": "/metrics"}
    assert [s["subject"]["name"] for s in urls["subjects"]] == ["system:serviceaccounts:team"]


def test_who_can_table_shows_each_grant_path(
    manifests: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "rbac",
                "who-can",
                "get",
                "deployments",
                "--api-group",
                "apps",
                "-n",
                "team",
                manifests,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("Who can get deployments.apps in namespace team:")
    assert "ServiceAccount team/ci" in out
    assert "RoleBinding team/ci subjects[0] -> Role team/deployer rules[0]" in out
    assert "Unknown (the role could not be read" in out
    assert "system:masters" in out


def test_subject_json_groups_by_scope_with_implicit_groups(
    manifests: str, capsys: pytest.CaptureFixture[str]
) -> None:
    document = run_json(capsys, "subject", "ServiceAccount", "ci", "-n", "team", manifests)
    assert document["identity"] == {
        "username": "system:serviceaccount:team:ci",
        "groups": ["system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated"],
    }
    scopes = [(s["namespace"], len(s["grants"])) for s in document["scopes"]]
    assert scopes == [(None, 1), ("team", 2)]
    cluster_grant = document["scopes"][0]["grants"][0]
    assert cluster_grant["subject"]["name"] == "system:serviceaccounts:team"
    assert cluster_grant["rule"]["nonResourceURLs"] == ["/metrics"]


def test_subject_table_and_service_account_user_name(
    manifests: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["rbac", "subject", "User", "system:serviceaccount:team:ci", manifests])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("ServiceAccount team/ci (user system:serviceaccount:team:ci;")
    assert "namespace team:" in out and "deployments.apps,deployments/scale.apps" in out
    assert main(["rbac", "subject", "user", "nobody", manifests]) == 0
    assert "nothing granted by RBAC" in capsys.readouterr().out


def test_subject_namespace_filters_a_users_scopes(
    manifests: str, capsys: pytest.CaptureFixture[str]
) -> None:
    everywhere = run_json(capsys, "subject", "Group", "release-managers", manifests)
    assert [s["namespace"] for s in everywhere["scopes"]] == ["team"]
    elsewhere = run_json(capsys, "subject", "Group", "release-managers", "-n", "web", manifests)
    assert elsewhere["scopes"] == []


def test_example_shop_deployer_is_cluster_admin(capsys: pytest.CaptureFixture[str]) -> None:
    document = run_json(capsys, "who-can", "get", "secrets", "-n", "shop-data", SHOP)
    assert [g["path"] for s in document["subjects"] for g in s["grants"]] == [
        "ClusterRoleBinding ci-deployer subjects[0] -> built-in ClusterRole cluster-admin rules[0]"
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["who-can", "get", "pods/"], "one '/'"),
        (["who-can", "get", "/metrics", "-n", "shop"], "--namespace do not apply"),
        (["who-can", "get", "deployments.apps", "--api-group", "batch"], "--api-group"),
        (["subject", "ServiceAccount", "ci"], "needs -n NAMESPACE"),
        (["subject", "Robot", "r2"], "KIND 'Robot'"),
        (["subject", "Group", "ops", "--group", "x"], "--group only applies to a User"),
    ],
)
def test_usage_errors_exit_2_naming_the_word(
    manifests: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rbac", *argv, manifests]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_input_and_missing_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rbac", "who-can", "get", "pods"]) == 2
    assert "give PATH... or --cluster" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["rbac", "who-can", "get"])
    assert exit_info.value.code == 2


def test_input_errors_exit_2_but_still_answer(
    manifests: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [1\n")
    code = main(
        [
            "rbac",
            "who-can",
            "get",
            "deployments.apps",
            "-n",
            "team",
            manifests,
            str(broken),
            "-o",
            "json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 2
    document = json.loads(captured.out)
    assert document["input"]["complete"] is False and document["input"]["errors"]
    assert document["subjects"]
    assert "broken.yaml" in captured.err
