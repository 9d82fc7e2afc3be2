"""Secrets hygiene checks, and the guarantee behind all of them: no result of any check
ever carries a credential, or any six characters of one."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from checks.helpers import inventory_of, run, run_all, statuses
from fake_credentials import FAKES, FakeCredential
from kubeproof.checks import catalogue, find
from kubeproof.engine import Context, evaluate
from kubeproof.inventory import Inventory, K8sObject
from kubeproof.model import Result


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def workload(
    container: dict[str, Any], *, init: list[dict[str, Any]] | None = None, name: str = "shop"
) -> dict[str, Any]:
    pod: dict[str, Any] = {"containers": [{"name": "app", "image": "shop:1.0", **container}]}
    if init:
        pod["initContainers"] = init
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"template": {"spec": pod}},
    }


def env(**values: Any) -> dict[str, Any]:
    return workload({"env": [{"name": k, "value": v} for k, v in values.items()]})


def config_map(
    data: dict[str, Any] | None = None, binary: dict[str, Any] | None = None
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "shop-config", "namespace": "shop"},
    }
    if data is not None:
        manifest["data"] = data
    if binary is not None:
        manifest["binaryData"] = binary
    return manifest


def secret(**fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "shop-db", "namespace": "shop"},
        **fields,
    }


# --- secrets.credential-in-env ------------------------------------------------------------

# (env var name, fake) -> the label the message must give
ENV_CASES = [
    ("AWS_ACCESS_KEY_ID", "aws-key-id", "AWS access key ID"),
    ("AWS_SECRET_ACCESS_KEY", "aws-secret", "AWS secret access key"),
    ("GITHUB_TOKEN", "github", "GitHub token"),
    ("CI_TOKEN", "gitlab", "GitLab token"),
    ("SLACK_BOT", "slack", "Slack token"),
    ("PAYMENTS", "stripe", "Stripe API key"),
    ("SESSION", "jwt", "JSON Web Token"),
    ("TLS_KEY", "private-key", "private key"),
    ("GOOGLE_APPLICATION_CREDENTIALS_JSON", "gcp", "GCP service account key"),
    ("STORAGE_CONNECTION", "azure", "Azure account or shared access key"),
    ("DATABASE_URL", "url-password", "password in a URL"),
    ("DB_PASSWORD", "password", "literal password"),
]


@pytest.mark.parametrize(("name", "fake", "label"), ENV_CASES)
def test_literal_credential_in_env_fails(name: str, fake: str, label: str) -> None:
    [result] = run("secrets.credential-in-env", env(LOG_LEVEL="info", **{name: FAKES[fake].text}))
    assert result.status.value == "fail"
    assert f"env var {name} holds a literal credential ({label})" in result.message
    assert result.path == "spec.template.spec.containers[0].env[1].value"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DB_PASSWORD", "$(DB_PASSWORD_FROM_SECRET)"),
        ("DB_PASSWORD", ""),
        ("DB_PASSWORD", "<set-me>"),
        ("DB_PASSWORD", "${DB_PASSWORD}"),
        ("DB_PASSWORD_FILE", "/run/secrets/db/password"),
        ("DATABASE_URL", "postgres://shop:$(DB_PASSWORD)@db.shop:5432/shop"),
        ("DATABASE_URL", "postgres://db.shop:5432/shop"),
        ("TOKEN_TTL_SECONDS", "3600"),
        ("API_KEY_HEADER", "X-Api-Key"),
        ("KMS_KEY_ID", "1234abcd-12ab-34cd-56ef-1234567890ab"),
        ("PUBLIC_KEY", FAKES["private-key"].text.replace("PRIVATE", "PUBLIC")),
        ("CACHE_KEY", "users"),
        ("ENABLE_TOKEN_AUTH", "true"),
        ("PWD", "/app"),
    ],
)
def test_values_that_are_not_credentials_pass(name: str, value: str) -> None:
    results = run("secrets.credential-in-env", env(**{name: value}))
    assert statuses(results) == ["pass"], results[0].message


def test_default_passwords_are_still_credentials() -> None:
    # Decision: a well-known default deployed as is is a credential in plain configuration.
    [result] = run("secrets.credential-in-env", env(ADMIN_PASSWORD="changeme"))
    assert result.status.value == "fail"


def test_numeric_yaml_password_is_read_as_text() -> None:
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: shop}
spec:
  containers:
    - name: app
      image: app:1
      env:
        - {name: REDIS_PASSWORD, value: 80417723}
"""
    assert statuses(run("secrets.credential-in-env", manifest)) == ["fail"]


def test_init_container_env_is_judged() -> None:
    manifest = workload(
        {},
        init=[
            {
                "name": "seed",
                "image": "seed:1",
                "env": [{"name": "GH", "value": FAKES["github"].text}],
            }
        ],
    )
    results = {r.subject.container: r for r in run("secrets.credential-in-env", manifest)}
    assert results["seed"].status.value == "fail"
    assert "init container seed" in results["seed"].message
    assert results["app"].status.value == "pass"


# --- secrets.credential-in-command --------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "items", "index", "words"),
    [
        (
            "args",
            ["--listen=:8080", "--db-password=" + FAKES["password"].secret],
            1,
            ("args[1]", "literal password"),
        ),
        ("args", ["--db-password", FAKES["password"].secret], 1, ("after flag --db-password",)),
        (
            "command",
            ["sh", "-c", "curl -H 'Authorization: Bearer " + FAKES["jwt"].text + "' x"],
            2,
            ("command[2]", "JSON Web Token"),
        ),
        (
            "args",
            ["--repo", "https://ci:" + FAKES["github"].text + "@github.com/shop/app.git"],
            1,
            ("GitHub token", "password in a URL"),
        ),
    ],
)
def test_credential_in_command_fails(
    field: str, items: list[str], index: int, words: tuple[str, ...]
) -> None:
    [result] = run("secrets.credential-in-command", workload({field: items}))
    assert result.status.value == "fail"
    assert result.path == f"spec.template.spec.containers[0].{field}[{index}]"
    for word in words:
        assert word in result.message


@pytest.mark.parametrize(
    "items",
    [
        ["--db-password-file", "/run/secrets/db"],
        ["--port", "8080", "--token-ttl", "3600"],
        ["--password", "$(DB_PASSWORD)"],
        ["serve", "--config=/etc/shop/config.yaml"],
    ],
)
def test_command_without_credentials_passes(items: list[str]) -> None:
    assert statuses(run("secrets.credential-in-command", workload({"args": items}))) == ["pass"]


# --- secrets.credential-in-configmap ------------------------------------------------------

PROPERTIES = "\n".join(
    [
        "server.port=8080",
        "spring.datasource.url=jdbc:postgresql://db:5432/shop",
        "spring.datasource.username=shop",
        "spring.datasource.password=" + FAKES["password"].secret,
        "spring.datasource.password-file=/run/secrets/db",
    ]
)


@pytest.mark.parametrize(
    ("data", "binary", "words"),
    [
        (
            {"application.properties": PROPERTIES},
            None,
            ("key application.properties, line 4", "literal password"),
        ),
        ({"db_password": FAKES["password"].secret}, None, ("key db_password", "literal password")),
        ({"credentials.json": FAKES["gcp"].text}, None, ("GCP service account key",)),
        (
            {"app.yaml": "stripe:\n  apiKey: " + FAKES["stripe"].text + "\n"},
            None,
            ("line 2", "Stripe API key"),
        ),
        (
            {"settings.xml": "<settings><password>" + FAKES["password"].secret + "</password>"},
            None,
            ("key settings.xml", "literal password"),
        ),
        (None, {"deploy_key": b64(FAKES["private-key"].text)}, ("key deploy_key", "private key")),
    ],
)
def test_credential_in_configmap_fails(
    data: dict[str, Any] | None, binary: dict[str, Any] | None, words: tuple[str, ...]
) -> None:
    [result] = run("secrets.credential-in-configmap", config_map(data, binary))
    assert result.status.value == "fail"
    for word in words:
        assert word in result.message


def test_configmap_without_credentials_passes() -> None:
    clean = config_map(
        {
            "application.properties": (
                "server.port=8080\nspring.datasource.password=${DB_PASSWORD}\n"
            ),
            "nginx.conf": "server { listen 8080; location / { proxy_pass http://shop:8080; } }",
            "LOG_LEVEL": "info",
            "token_ttl": "3600",
        },
        {"logo.png": b64("\x89PNG\r\n\x1a\n fake image bytes")},
    )
    results = run("secrets.credential-in-configmap", clean)
    assert statuses(results) == ["pass"], results[0].message


def test_configmap_with_unreadable_binary_data_is_not_evaluated() -> None:
    results = run("secrets.credential-in-configmap", config_map(binary={"blob": "not base64!"}))
    assert statuses(results) == ["not_evaluated"]
    assert "blob" in (results[0].reason or "")


# --- secrets.secret-data-in-manifest ------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected", "words"),
    [
        (
            {"data": {"password": b64("hunter22"), "username": b64("shop")}},
            "fail",
            ("data keys password, username",),
        ),
        ({"stringData": {"url": FAKES["url-password"].text}}, "fail", ("stringData keys url",)),
        ({"data": {"password": ""}, "stringData": {"token": "${TOKEN}"}}, "pass", ()),
        ({"type": "kubernetes.io/service-account-token"}, "pass", ()),
        ({"data": {"blob": "%%% not base64"}}, "fail", ("data keys blob",)),
    ],
)
def test_secret_data_in_manifest(
    fields: dict[str, Any], expected: str, words: tuple[str, ...]
) -> None:
    [result] = run("secrets.secret-data-in-manifest", secret(**fields))
    assert result.status.value == expected
    for word in words:
        assert word in result.message


def test_secrets_read_from_a_cluster_are_not_judged() -> None:
    obj = K8sObject.from_raw(secret(data={"password": b64("hunter22")}))
    obj.extra["source"] = "cluster"
    inventory = Inventory([obj])
    check = find("secrets.secret-data-in-manifest")
    assert check is not None
    assert evaluate(inventory, [check], Context(inventory)) == []


# --- secrets.service-account-token-secret -------------------------------------------------


def test_service_account_token_secret() -> None:
    legacy = secret(
        type="kubernetes.io/service-account-token",
        metadata={
            "name": "ci-token",
            "namespace": "ci",
            "annotations": {"kubernetes.io/service-account.name": "ci"},
        },
    )
    [result] = run("secrets.service-account-token-secret", legacy)
    assert result.status.value == "fail"
    assert "ServiceAccount ci" in result.message
    assert statuses(run("secrets.service-account-token-secret", secret(type="Opaque"))) == ["pass"]


# --- secrets.secret-as-env ----------------------------------------------------------------


def test_secret_as_env_fails_for_each_reference() -> None:
    manifest = workload(
        {
            "env": [
                {
                    "name": "DB_PASSWORD",
                    "valueFrom": {"secretKeyRef": {"name": "shop-db", "key": "password"}},
                },
                {
                    "name": "LOG_LEVEL",
                    "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "level"}},
                },
            ],
            "envFrom": [{"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "shop-api"}}],
        }
    )
    [result] = run("secrets.secret-as-env", manifest)
    assert result.status.value == "fail"
    assert "env var DB_PASSWORD is set from Secret shop-db key password" in result.message
    assert "envFrom imports every key of Secret shop-api" in result.message
    assert [v["path"] for v in result.extra["violations"]] == [
        "spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef",
        "spec.template.spec.containers[0].envFrom[1].secretRef",
    ]


def test_secret_mounted_as_file_passes() -> None:
    manifest = workload(
        {
            "volumeMounts": [{"name": "db", "mountPath": "/run/secrets/db"}],
            "env": [{"name": "DB_PASSWORD_FILE", "value": "/run/secrets/db/pw"}],
        }
    )
    assert statuses(run("secrets.secret-as-env", manifest)) == ["pass"]


# --- hostile input ------------------------------------------------------------------------

SECRETS_CHECKS = [c.id for c in catalogue() if c.spec.group == "secrets"]

HOSTILE: list[dict[str, Any]] = [
    workload(
        {
            "env": [
                None,
                "X=1",
                {"name": 3, "value": ["a"]},
                {"valueFrom": "secret"},
                {"name": "P", "valueFrom": {"secretKeyRef": "shop"}},
            ],
            "envFrom": "all",
            "args": {"--password": "x"},
            "command": [None, 5, True],
        }
    ),
    config_map({"k": {"nested": "x"}, "n": None}, {"b": 12}),
    config_map([1, 2], "x"),  # type: ignore[arg-type]
    secret(data="abc", stringData=["x"], type=5),
    secret(data={"k": {"x": 1}}, metadata="broken"),
]


@pytest.mark.parametrize("check_id", SECRETS_CHECKS)
def test_hostile_input_never_crashes_a_check(check_id: str) -> None:
    for result in run(check_id, *HOSTILE):
        assert "check error" not in (result.reason or ""), result.reason


# --- no check ever shows a credential -----------------------------------------------------

# A namespace full of the mistakes this project exists to catch, run through every check.
LEAKY_MANIFESTS: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
    workload(
        {
            "env": [
                {"name": f"VAR_{i}", "value": fake.text} for i, fake in enumerate(FAKES.values())
            ]
            + [
                {"name": "DB_PASSWORD", "value": FAKES["password"].text},
                {"name": "AWS_SECRET_ACCESS_KEY", "value": FAKES["aws-secret"].text},
            ],
            "args": [
                "--db-password",
                FAKES["password"].text,
                "--token=" + FAKES["gitlab"].text,
                FAKES["url-password"].text,
            ],
            "command": ["sh", "-c", "export TOKEN=" + FAKES["slack"].text + " && run"],
        }
    ),
    config_map(
        {
            "application.properties": "spring.datasource.password=" + FAKES["password"].text,
            "service-account.json": FAKES["gcp"].text,
            "aws_secret_access_key": FAKES["aws-secret"].text,
            "connection": FAKES["azure"].text,
        },
        {"id_rsa": b64(FAKES["private-key"].text)},
    ),
    secret(
        data={"db_password": b64(FAKES["password"].text), "stripe_key": b64(FAKES["stripe"].text)},
        stringData={"jwt": FAKES["jwt"].text, "github": FAKES["github"].text},
    ),
]


def result_text(result: Result) -> str:
    """Every field of a result that a report, log or database row could show."""
    return "\n".join(
        [
            result.message,
            result.path or "",
            result.reason or "",
            json.dumps(result.extra, default=str),
            str(result.subject),
            json.dumps(result.subject.as_dict()),
        ]
    )


def leaks(fake: FakeCredential, text: str) -> list[str]:
    return sorted(
        {
            secret[i : i + 6]
            for secret in fake.secrets
            for i in range(len(secret) - 5)
            if secret[i : i + 6] in text
        }
    )


def test_no_result_of_any_check_contains_any_part_of_a_credential() -> None:
    results = run_all(*LEAKY_MANIFESTS)
    failed = {r.check.id for r in results if r.status.value == "fail"}
    # The scan must actually have found them, or the assertion below proves nothing.
    assert {
        "secrets.credential-in-env",
        "secrets.credential-in-command",
        "secrets.credential-in-configmap",
        "secrets.secret-data-in-manifest",
    } <= failed
    everything = "\n".join(result_text(r) for r in results)
    for name, fake in FAKES.items():
        assert leaks(fake, everything) == [], f"part of fake {name} appears in a result"


def test_every_fake_is_recognised_where_it_is_planted() -> None:
    results = [r for r in run_all(*LEAKY_MANIFESTS) if r.check.id == "secrets.credential-in-env"]
    message = results[0].message
    for index, fake in enumerate(FAKES.values()):
        if not fake.named:
            assert f"env var VAR_{index} holds a literal credential ({fake.kind.label}" in message


def test_leak_detector_detects_a_leak() -> None:
    # The guard above is only as good as `leaks`; show it fires on a single 6-char slice.
    fake = FAKES["github"]
    assert leaks(fake, "prefix " + fake.secret[10:16] + " suffix")


def test_inventory_helper_round_trips() -> None:
    assert len(inventory_of(*LEAKY_MANIFESTS)) == len(LEAKY_MANIFESTS)
