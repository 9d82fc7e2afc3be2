"""The webhook's policy file: what to enforce, where, for whom, and which images may run.

Every mistake in the file is reported with the field it is in (`namespaces[1].mode`), so a
policy either loads exactly as written or not at all: a webhook that half-understood its
policy would enforce something nobody wrote down.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from kubeproof import frameworks
from kubeproof.admission.signatures import KeyProblem, PolicyKey, load_policy_key
from kubeproof.admission.trustroot import (
    Identity,
    KeylessTrust,
    TrustedRootProblem,
    load_trusted_root,
)
from kubeproof.bounded import UnreadableFile, read_bounded_text
from kubeproof.checks import Check, catalogue
from kubeproof.engine import WORKLOAD_KINDS
from kubeproof.inventory.selectors import label_selector_problem, selector_matches
from kubeproof.sources.documents import DocumentError, load_single_document

POLICY_API_VERSION = "kubeproof.dev/v1alpha1"
POLICY_KIND = "AdmissionPolicy"
MODES = ("enforce", "warn", "audit", "off")
MAX_POLICY_BYTES = 1 << 20  # a policy is a page of YAML written by hand
# Scopes whose subject is the admitted object itself; the others judge namespaces, the
# cluster or other kinds, which one AdmissionReview does not show.
ADMISSION_SCOPES = frozenset({"container", "workload"})
IMAGE_DIGEST_CHECK = "workload.image-digest"
REGISTRY_ERROR_MODES = ("fail-closed", "fail-open")

_TOP_LEVEL = frozenset(
    {
        "apiVersion",
        "kind",
        "enforce",
        "defaultMode",
        "namespaces",
        "exemptions",
        "images",
        "failClosed",
    }
)


class PolicyError(Exception):
    """The policy file cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class NamespaceRule:
    """Namespaces matched by name glob and/or label selector get `mode`."""

    names: tuple[str, ...]
    selector: dict[str, Any] | None
    mode: str

    def matches(self, namespace: str, labels: dict[str, str] | None) -> bool:
        if self.names and not any(fnmatch.fnmatchcase(namespace, g) for g in self.names):
            return False
        if self.selector is not None:
            # Unknown labels match no selector: the rule cannot be shown to apply.
            return labels is not None and selector_matches(self.selector, labels)
        return True


@dataclass(frozen=True)
class Exemptions:
    namespaces: tuple[str, ...] = ()
    service_accounts: tuple[str, ...] = ()  # namespace:name globs
    usernames: tuple[str, ...] = ()

    def reason(self, namespace: str, username: str) -> str | None:
        """Why a request is exempt, or None."""
        for glob in self.namespaces:
            if fnmatch.fnmatchcase(namespace, glob):
                return f"namespace {namespace} is exempt ({glob})"
        for glob in self.usernames:
            if fnmatch.fnmatchcase(username, glob):
                return f"user {username} is exempt ({glob})"
        prefix = "system:serviceaccount:"
        if username.startswith(prefix):
            account = username[len(prefix) :]
            for glob in self.service_accounts:
                if fnmatch.fnmatchcase(account, glob):
                    return f"service account {account} is exempt ({glob})"
        return None


@dataclass(frozen=True)
class SignatureRule:
    """Images from `repositories` (REGISTRY/REPOSITORY globs) must carry a cosign
    signature by one of `keys`, or a keyless Sigstore bundle by one of the identities of
    `keyless`; `name` is where the rule is in the policy."""

    name: str
    repositories: tuple[str, ...]
    keys: tuple[PolicyKey, ...]
    required: bool = True
    keyless: KeylessTrust | None = None

    def matches(self, repository: str) -> bool:
        return any(fnmatch.fnmatchcase(repository, glob) for glob in self.repositories)


@dataclass(frozen=True)
class ImageRules:
    allowed_registries: tuple[str, ...] = ()
    allowed_repositories: tuple[str, ...] = ()
    require_digest: bool = False
    signatures: tuple[SignatureRule, ...] = ()
    registry_errors: str = "fail-closed"

    @property
    def restricts_sources(self) -> bool:
        return bool(self.allowed_registries or self.allowed_repositories)

    @property
    def requires_signatures(self) -> bool:
        return any(rule.required for rule in self.signatures)

    def signature_rule_for(self, repository: str) -> SignatureRule | None:
        """The first rule whose repositories match REGISTRY/REPOSITORY."""
        return next((rule for rule in self.signatures if rule.matches(repository)), None)


@dataclass(frozen=True)
class Policy:
    checks: tuple[Check, ...]
    default_mode: str = "enforce"
    namespaces: tuple[NamespaceRule, ...] = ()
    exemptions: Exemptions = field(default_factory=Exemptions)
    images: ImageRules = field(default_factory=ImageRules)
    fail_closed: bool = True
    framework_pss_level: str | None = None
    # Checks that were asked for but cannot be judged on one object (they need other kinds).
    left_to_scan: tuple[str, ...] = ()
    source: str = "policy"
    # SHA-256 of the policy as read (and of its keys): each recorded decision names it.
    digest: str = ""

    @property
    def uses_namespace_labels(self) -> bool:
        return any(rule.selector is not None for rule in self.namespaces)

    def mode_for(self, namespace: str, labels: dict[str, str] | None) -> str:
        """The first rule that matches wins; otherwise the default mode."""
        for rule in self.namespaces:
            if rule.matches(namespace, labels):
                return rule.mode
        return self.default_mode


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; raises PolicyError naming the file and field."""
    return policy_from_text(read_policy_text(path), path)


def read_policy_text(path: str | Path) -> str:
    where = str(path)
    try:
        return read_bounded_text(path, MAX_POLICY_BYTES, f"policy {where}")
    except UnreadableFile as refused:
        raise PolicyError(str(refused)) from None


def policy_from_text(text: str, path: str | Path) -> Policy:
    """The policy a file read from `path` holds (relative key paths are read beside it)."""
    where = str(path)
    try:
        data = load_single_document(text, f"policy {where}")
    except DocumentError as error:
        raise PolicyError(str(error)) from None
    return parse_policy(data, where, Path(path).parent)


def parse_policy(data: Any, where: str = "policy", base: Path | None = None) -> Policy:
    """`base` is the directory relative key file paths are read from."""
    try:
        return _parse(data, where, base)
    except _FieldError as error:
        raise PolicyError(f"policy {where}: {error}") from None


class _FieldError(Exception):
    pass


def _parse(data: Any, where: str, base: Path | None) -> Policy:
    if not isinstance(data, dict):
        raise _FieldError("the document is not a mapping")
    unknown = sorted(str(k) for k in data if k not in _TOP_LEVEL)
    if unknown:
        raise _FieldError(f"unknown field {unknown[0]} (known: {', '.join(sorted(_TOP_LEVEL))})")
    if data.get("apiVersion") != POLICY_API_VERSION:
        raise _FieldError(f"apiVersion must be {POLICY_API_VERSION}")
    if data.get("kind") != POLICY_KIND:
        raise _FieldError(f"kind must be {POLICY_KIND}")
    images = _images(data.get("images"), base)
    checks, pss_level, left = _checks(data.get("enforce"), images)
    return Policy(
        checks=checks,
        default_mode=_mode(data.get("defaultMode", "enforce"), "defaultMode"),
        namespaces=tuple(
            _namespace_rule(entry, f"namespaces[{i}]")
            for i, entry in enumerate(_list(data.get("namespaces"), "namespaces"))
        ),
        exemptions=_exemptions(data.get("exemptions")),
        images=images,
        fail_closed=_bool(data.get("failClosed", True), "failClosed"),
        framework_pss_level=pss_level,
        left_to_scan=left,
        source=where,
        digest=_digest(data, images),
    )


def _digest(data: dict[str, Any], images: ImageRules) -> str:
    """Over the document's meaning (not its comments or layout) and the keys it trusts,
    which may live in files it only names."""
    keys = [key.fingerprint for rule in images.signatures for key in rule.keys] + [
        rule.keyless.fingerprint for rule in images.signatures if rule.keyless is not None
    ]
    text = orjson.dumps(
        {"policy": data, "keys": keys},
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
        default=str,
    )
    return hashlib.sha256(text).hexdigest()


def _checks(
    value: Any, images: ImageRules
) -> tuple[tuple[Check, ...], str | None, tuple[str, ...]]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise _FieldError("enforce is not a mapping")
    unknown = sorted(str(k) for k in value if k not in ("frameworks", "checks", "skipChecks"))
    if unknown:
        raise _FieldError(f"enforce.{unknown[0]}: unknown field (frameworks, checks, skipChecks)")
    by_id = {c.id: c for c in catalogue()}
    chosen: set[str] = set()
    pss_levels: list[str] = []
    for i, name in enumerate(_strings(value.get("frameworks"), "enforce.frameworks")):
        try:
            framework = frameworks.load(name)
        except frameworks.UnknownFramework as error:
            raise _FieldError(f"enforce.frameworks[{i}]: {error.args[0]}") from None
        chosen.update(c.id for c in framework.checks)
        if framework.pss_level:
            pss_levels.append(framework.pss_level)
    for field_name in ("checks", "skipChecks"):
        for i, check_id in enumerate(_strings(value.get(field_name), f"enforce.{field_name}")):
            if check_id not in by_id:
                raise _FieldError(
                    f"enforce.{field_name}[{i}]: unknown check {check_id!r} "
                    "(see `kubeproof checks`)"
                )
    chosen.update(_strings(value.get("checks"), "enforce.checks"))
    if images.require_digest:
        chosen.add(IMAGE_DIGEST_CHECK)
    chosen.difference_update(_strings(value.get("skipChecks"), "enforce.skipChecks"))
    if not chosen and not images.restricts_sources and not images.requires_signatures:
        raise _FieldError("enforce selects no checks and images sets no rule: nothing to enforce")
    admissible = tuple(c for c in catalogue() if c.id in chosen and judged_at_admission(c))
    left = tuple(sorted(chosen - {c.id for c in admissible}))
    # The strictest Pod Security level asked for; namespace labels override it, as in scan.
    levels = ("baseline", "restricted")
    pss_level = max(pss_levels, key=levels.index) if pss_levels else None
    return admissible, pss_level, left


def judged_at_admission(check: Check) -> bool:
    """Whether the admitted object alone is enough to judge a check: its subject is the
    pod spec, and it needs no other kind (NetworkPolicies, RBAC, budgets ...) read in full."""
    return check.spec.scope in ADMISSION_SCOPES and set(check.spec.needs) <= set(WORKLOAD_KINDS)


def _namespace_rule(value: Any, where: str) -> NamespaceRule:
    if not isinstance(value, dict):
        raise _FieldError(f"{where} is not a mapping")
    unknown = sorted(str(k) for k in value if k not in ("names", "selector", "mode"))
    if unknown:
        raise _FieldError(f"{where}.{unknown[0]}: unknown field (names, selector, mode)")
    names = _strings(value.get("names"), f"{where}.names")
    selector = value.get("selector")
    problem = label_selector_problem(selector, f"{where}.selector")
    if problem is not None:
        raise _FieldError(problem)
    if not names and selector is None:
        raise _FieldError(f"{where} needs names or selector")
    if "mode" not in value:
        raise _FieldError(f"{where}.mode is missing (one of {', '.join(MODES)})")
    return NamespaceRule(names, selector, _mode(value["mode"], f"{where}.mode"))


def _exemptions(value: Any) -> Exemptions:
    if value is None:
        return Exemptions()
    if not isinstance(value, dict):
        raise _FieldError("exemptions is not a mapping")
    known = ("namespaces", "serviceAccounts", "usernames")
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise _FieldError(f"exemptions.{unknown[0]}: unknown field ({', '.join(known)})")
    accounts = _strings(value.get("serviceAccounts"), "exemptions.serviceAccounts")
    for i, account in enumerate(accounts):
        if account.count(":") != 1:
            raise _FieldError(f"exemptions.serviceAccounts[{i}]: {account!r} is not NAMESPACE:NAME")
    return Exemptions(
        namespaces=_strings(value.get("namespaces"), "exemptions.namespaces"),
        service_accounts=accounts,
        usernames=_strings(value.get("usernames"), "exemptions.usernames"),
    )


def _images(value: Any, base: Path | None) -> ImageRules:
    if value is None:
        return ImageRules()
    if not isinstance(value, dict):
        raise _FieldError("images is not a mapping")
    known = (
        "allowedRegistries",
        "allowedRepositories",
        "requireDigest",
        "signatures",
        "registryErrors",
    )
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise _FieldError(f"images.{unknown[0]}: unknown field ({', '.join(known)})")
    repositories = _strings(value.get("allowedRepositories"), "images.allowedRepositories")
    for i, glob in enumerate(repositories):
        if "/" not in glob:
            raise _FieldError(
                f"images.allowedRepositories[{i}]: {glob!r} names no registry "
                "(write REGISTRY/REPOSITORY, e.g. docker.io/library/nginx)"
            )
    return ImageRules(
        allowed_registries=_strings(value.get("allowedRegistries"), "images.allowedRegistries"),
        allowed_repositories=repositories,
        require_digest=_bool(value.get("requireDigest", False), "images.requireDigest"),
        signatures=tuple(
            _signature_rule(entry, f"images.signatures[{i}]", base)
            for i, entry in enumerate(_list(value.get("signatures"), "images.signatures"))
        ),
        registry_errors=_registry_errors(value.get("registryErrors", "fail-closed")),
    )


def _signature_rule(value: Any, where: str, base: Path | None) -> SignatureRule:
    if not isinstance(value, dict):
        raise _FieldError(f"{where} is not a mapping")
    known = ("repositories", "keys", "keyless", "required")
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise _FieldError(f"{where}.{unknown[0]}: unknown field ({', '.join(known)})")
    repositories = _strings(value.get("repositories"), f"{where}.repositories")
    if not repositories:
        raise _FieldError(f"{where}.repositories: name at least one REGISTRY/REPOSITORY glob")
    for i, glob in enumerate(repositories):
        if not _names_registry(glob):
            raise _FieldError(
                f"{where}.repositories[{i}]: {glob!r} names no registry "
                "(write REGISTRY/REPOSITORY, e.g. registry.example.com/team/*)"
            )
    required = _bool(value.get("required", True), f"{where}.required")
    texts = _strings(value.get("keys"), f"{where}.keys")
    keyless = _keyless(value["keyless"], f"{where}.keyless", base) if "keyless" in value else None
    if not texts and keyless is None:
        raise _FieldError(
            f"{where}.keys: name at least one public key (PEM or a file path), or set keyless"
        )
    keys = []
    for i, text in enumerate(texts):
        try:
            keys.append(load_policy_key(text, base))
        except KeyProblem as error:
            raise _FieldError(f"{where}.keys[{i}]: {error}") from None
    return SignatureRule(where, repositories, tuple(keys), required, keyless)


def _keyless(value: Any, where: str, base: Path | None) -> KeylessTrust:
    if not isinstance(value, dict):
        raise _FieldError(f"{where} is not a mapping")
    known = ("trustedRoot", "identities")
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise _FieldError(f"{where}.{unknown[0]}: unknown field ({', '.join(known)})")
    path = value.get("trustedRoot")
    if not isinstance(path, str) or not path:
        raise _FieldError(f"{where}.trustedRoot: name the Sigstore trusted root JSON file")
    try:
        root = load_trusted_root(path, base)
    except TrustedRootProblem as error:
        raise _FieldError(f"{where}.trustedRoot: {error}") from None
    entries = _list(value.get("identities"), f"{where}.identities")
    if not entries:
        raise _FieldError(f"{where}.identities: name at least one issuer and subject")
    identities = tuple(
        _identity(entry, f"{where}.identities[{i}]") for i, entry in enumerate(entries)
    )
    return KeylessTrust(root, identities)


def _identity(value: Any, where: str) -> Identity:
    if not isinstance(value, dict):
        raise _FieldError(f"{where} is not a mapping")
    known = ("issuer", "subject", "subjectRegExp")
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise _FieldError(f"{where}.{unknown[0]}: unknown field ({', '.join(known)})")
    for name in known:
        if name in value and (not isinstance(value[name], str) or not value[name]):
            raise _FieldError(f"{where}.{name} is not a non-empty string")
    if "issuer" not in value:
        raise _FieldError(f"{where}.issuer is missing (the OIDC issuer URL)")
    if ("subject" in value) == ("subjectRegExp" in value):
        raise _FieldError(f"{where} needs exactly one of subject and subjectRegExp")
    if "subject" in value:
        return Identity(value["issuer"], subject=value["subject"])
    try:
        pattern = re.compile(value["subjectRegExp"])
    except (re.error, RecursionError, OverflowError):
        raise _FieldError(f"{where}.subjectRegExp is not a regular expression") from None
    return Identity(value["issuer"], subject_pattern=pattern)


def _names_registry(glob: str) -> bool:
    """Whether a REGISTRY/REPOSITORY glob starts with a host, as references are read
    (`team/app` is Docker Hub's, so a rule on it would silently match nothing)."""
    first, slash, _ = glob.partition("/")
    host_like = "." in first or ":" in first or first == "localhost" or "*" in first
    return bool(slash) and host_like


def _registry_errors(value: Any) -> str:
    if value not in REGISTRY_ERROR_MODES:
        raise _FieldError(
            f"images.registryErrors: {value!r} is not one of {', '.join(REGISTRY_ERROR_MODES)}"
        )
    return str(value)


def _mode(value: Any, where: str) -> str:
    if value not in MODES:
        raise _FieldError(f"{where}: {value!r} is not a mode (one of {', '.join(MODES)})")
    return str(value)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _FieldError(f"{where}: {value!r} is not true or false")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _FieldError(f"{where} is not a list")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = _list(value, where)
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item:
            raise _FieldError(f"{where}[{i}] is not a non-empty string")
    return tuple(items)
