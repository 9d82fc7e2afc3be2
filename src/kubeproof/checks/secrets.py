"""Secrets hygiene: credentials kept out of plain configuration and out of source.

Every message here says *where* a credential is (container, env var, argument,
ConfigMap key, line) and *which kind* it looks like, and never any part of it: what
looks like a credential is decided by kubeproof.redaction, and only its kinds and
positions come back from there.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kubeproof.checks.registry import NotApplicable, NotEvaluated, Violation, check
from kubeproof.inventory import Container, K8sObject, Workload
from kubeproof.inventory.objects import as_dict, as_list, as_str
from kubeproof.redaction import (
    CredentialKind,
    CredentialMatch,
    find_credentials,
    is_inert,
    locate_credentials,
    reported_matches,
    secret_name_strength,
)

if TYPE_CHECKING:
    from kubeproof.engine import Context

# Objects read from a live cluster carry extra["source"] == "cluster"; for them a Secret
# with data is normal storage, not a secret committed to source.
CLUSTER_SOURCE = "cluster"
SERVICE_ACCOUNT_TOKEN_TYPE = "kubernetes.io/service-account-token"

_FLAG = re.compile(r"-{1,2}(?P<name>[A-Za-z][A-Za-z0-9_.-]{0,63})")


_CONTAINER_KINDS = {
    "initContainers": "init container",
    "ephemeralContainers": "ephemeral container",
}


def _where(container: Container) -> str:
    return f"{_CONTAINER_KINDS.get(container.list_name, 'container')} {container.name}"


def _scalar_text(value: Any) -> str | None:
    """A field value as the text it stands for: YAML turns `password: 123456` into a number,
    but Kubernetes (and an attacker) reads it as text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    return as_str(value)


def _labels(kinds: list[CredentialKind]) -> str:
    return ", ".join(kind.label for kind in kinds)


# --- literal credentials in containers ----------------------------------------------------
#
# These run once per container of every workload: they return a list (an empty one costs
# far less than a generator the engine drains), and return at once when the container has
# nothing to look at.


@check("secrets.credential-in-env")
def credential_in_env(container: Container, workload: Workload, ctx: Context) -> list[Violation]:
    violations = []
    for index, entry in enumerate(as_list(container.spec.get("env"))):
        if not isinstance(entry, dict):
            continue
        value = _scalar_text(entry.get("value"))
        if value is None:
            continue
        name = as_str(entry.get("name")) or f"env[{index}]"
        kinds = find_credentials(name, value)
        if kinds:
            violations.append(
                Violation(
                    f"{_where(container)}: env var {name} holds a literal credential "
                    f"({_labels(kinds)})",
                    f"env[{index}].value",
                )
            )
    return violations


def _flag_name(argument: str | None) -> str | None:
    """`--db-password` -> `db-password`; None for anything that is not a bare flag."""
    if argument is None:
        return None
    match = _FLAG.fullmatch(argument)
    return match.group("name") if match else None


def _argument_violations(container: Container, field: str) -> Iterator[Violation]:
    previous_flag: str | None = None
    for index, item in enumerate(as_list(container.spec.get(field))):
        argument = _scalar_text(item)
        flag = previous_flag
        previous_flag = _flag_name(argument)
        if argument is None:
            continue
        kinds = find_credentials(None, argument)
        after = ""
        if flag is not None and secret_name_strength(flag) is not None:
            # `--password hunter2` as two list items: the flag names the next one.
            for kind in find_credentials(flag, argument):
                if kind not in kinds:
                    kinds.append(kind)
            after = f" after flag --{flag}"
        if kinds:
            yield Violation(
                f"{_where(container)}: {field}[{index}]{after} holds a "
                f"literal credential ({_labels(kinds)})",
                f"{field}[{index}]",
            )


@check("secrets.credential-in-command")
def credential_in_command(
    container: Container, workload: Workload, ctx: Context
) -> list[Violation]:
    violations: list[Violation] = []
    for field in ("command", "args"):
        if container.spec.get(field):  # many containers leave one or both out
            violations.extend(_argument_violations(container, field))
    return violations


# --- ConfigMaps ---------------------------------------------------------------------------


def _line_of(text: str, match: CredentialMatch) -> int:
    return text.count("\n", 0, match.start) + 1


def _text_violations(key: str, text: str, field: str) -> Iterator[Violation]:
    matches = reported_matches(locate_credentials(key, text))
    multiline = "\n" in text.rstrip("\n")
    seen: set[tuple[str, int]] = set()
    for match in matches:
        line = _line_of(text, match) if multiline else 0
        if (match.kind.value, line) in seen:
            continue
        seen.add((match.kind.value, line))
        at = f", line {line}" if line else ""
        yield Violation(
            f"ConfigMap key {key}{at} holds a literal credential ({match.kind.label})",
            f'{field}["{key}"]',
        )


def _decoded(value: str) -> str | None:
    """binaryData as text (invalid UTF-8 replaced: credentials are ASCII), or None when it
    is not base64 at all."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.decode("utf-8", errors="replace")


@check("secrets.credential-in-configmap")
def credential_in_configmap(obj: K8sObject, ctx: Context) -> list[Violation]:
    violations: list[Violation] = []
    for key, value in as_dict(obj.raw.get("data")).items():
        text = _scalar_text(value)
        if isinstance(key, str) and text is not None:
            violations.extend(_text_violations(key, text, "data"))
    unreadable = []
    for key, value in as_dict(obj.raw.get("binaryData")).items():
        if not isinstance(key, str):
            continue
        text = _decoded(as_str(value) or "")
        if text is None:
            unreadable.append(key)
        else:
            violations.extend(_text_violations(key, text, "binaryData"))
    if unreadable and not violations:
        raise NotEvaluated(
            f"binaryData keys {', '.join(sorted(unreadable))} are not valid "
            "base64, so their content could not be read"
        )
    return violations


# --- Secret objects -----------------------------------------------------------------------


def _holds_a_value(value: Any, *, encoded: bool) -> bool:
    """Whether a Secret entry carries something: not empty, not a placeholder for a value
    filled in at deploy time. Undecodable `data` still carries something."""
    text = _scalar_text(value)
    if text is None:
        return value is not None
    if encoded:
        try:
            text = base64.b64decode(text, validate=True).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError):
            return bool(text.strip())
    return not is_inert(text)


@check("secrets.secret-data-in-manifest")
def secret_data_in_manifest(obj: K8sObject, ctx: Context) -> Iterator[Violation]:
    if obj.extra.get("source") == CLUSTER_SOURCE:
        raise NotApplicable  # in a cluster, data is where a Secret keeps its value
    for field, encoded in (("data", True), ("stringData", False)):
        keys = sorted(
            str(key)
            for key, value in as_dict(obj.raw.get(field)).items()
            if _holds_a_value(value, encoded=encoded)
        )
        if keys:
            yield Violation(
                f"Secret {obj.name} carries literal values in its manifest ({field} keys "
                f"{', '.join(keys)}): anyone who can read the source has them",
                field,
            )


@check("secrets.service-account-token-secret")
def service_account_token_secret(obj: K8sObject, ctx: Context) -> Iterator[Violation]:
    if obj.raw.get("type") != SERVICE_ACCOUNT_TOKEN_TYPE:
        return
    account = obj.annotations.get("kubernetes.io/service-account.name", "?")
    yield Violation(
        f"Secret {obj.name} holds a long-lived, non-expiring API token for ServiceAccount "
        f"{account} (type {SERVICE_ACCOUNT_TOKEN_TYPE})",
        "type",
    )


# --- Secrets consumed as environment variables --------------------------------------------


@check("secrets.secret-as-env")
def secret_as_env(container: Container, workload: Workload, ctx: Context) -> list[Violation]:
    violations = []
    where = _where(container)
    for index, entry in enumerate(as_list(container.spec.get("env"))):
        value_from = entry.get("valueFrom") if isinstance(entry, dict) else None
        if not isinstance(value_from, dict):
            continue  # most env vars: a literal value
        ref = value_from.get("secretKeyRef")
        if isinstance(ref, dict):
            name = as_str(entry.get("name")) or f"env[{index}]"
            violations.append(
                Violation(
                    f"{where}: env var {name} is set from Secret "
                    f"{as_str(ref.get('name')) or '?'} key {as_str(ref.get('key')) or '?'}",
                    f"env[{index}].valueFrom.secretKeyRef",
                )
            )
    for index, entry in enumerate(as_list(container.spec.get("envFrom"))):
        ref = as_dict(entry).get("secretRef")
        if isinstance(ref, dict):
            violations.append(
                Violation(
                    f"{where}: envFrom imports every key of Secret "
                    f"{as_str(ref.get('name')) or '?'} as env vars",
                    f"envFrom[{index}].secretRef",
                )
            )
    return violations
