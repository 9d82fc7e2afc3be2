"""The credential detector and redactor: examples for the decisions, properties for the
guarantees (every generated credential is found and masked wherever it sits in a text;
redaction is total and idempotent; references and plain prose are left alone)."""

from __future__ import annotations

import re
import string
import time

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from fake_credentials import FAKES
from kubeproof import redaction
from kubeproof.redaction import (
    CredentialKind,
    CredentialMatch,
    NameStrength,
    find_credentials,
    is_inert,
    locate_credentials,
    redact,
    redact_data,
    redact_value,
    secret_name_strength,
    shannon_entropy,
)

UPPER_DIGITS = string.ascii_uppercase + string.digits
ALNUM = string.ascii_letters + string.digits
BASE64URL = ALNUM + "_-"


def chars(alphabet: str, size: int, max_size: int | None = None) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=size, max_size=max_size or size)


# Each strategy yields (kind, text as written, the secret part that must disappear).
def shaped(
    kind: CredentialKind, body: st.SearchStrategy[str], prefix: str = ""
) -> st.SearchStrategy[tuple[CredentialKind, str, str]]:
    return body.map(lambda b: (kind, prefix + b, prefix + b))


CREDENTIALS = st.one_of(
    st.builds(
        lambda p, b: (CredentialKind.AWS_ACCESS_KEY_ID, p + b, p + b),
        st.sampled_from(["AK" + "IA", "AS" + "IA"]),
        chars(UPPER_DIGITS, 16),
    ),
    shaped(CredentialKind.GITHUB_TOKEN, chars(ALNUM, 36), "gh" + "p_"),
    shaped(CredentialKind.GITHUB_TOKEN, chars(ALNUM + "_", 82), "github" + "_pat_"),
    shaped(CredentialKind.GITLAB_TOKEN, chars(ALNUM, 20, 40), "gl" + "pat-"),
    shaped(CredentialKind.SLACK_TOKEN, chars(ALNUM, 24, 48), "xo" + "xb-"),
    shaped(CredentialKind.STRIPE_KEY, chars(ALNUM, 24, 99), "sk" + "_live_"),
    shaped(CredentialKind.NPM_TOKEN, chars(ALNUM, 36), "np" + "m_"),
    shaped(CredentialKind.GOOGLE_API_KEY, chars(ALNUM, 35), "AI" + "za"),
    st.builds(
        lambda h, p, s: (CredentialKind.JWT, f"eyJ{h}.eyJ{p}.{s}", f"eyJ{h}.eyJ{p}.{s}"),
        chars(BASE64URL, 12, 40),
        chars(BASE64URL, 12, 80),
        chars(BASE64URL, 16, 64),
    ),
    st.builds(
        lambda body: (
            CredentialKind.PRIVATE_KEY,
            "-----BEGIN " + "PRIVATE KEY-----\n" + body + "\n-----END " + "PRIVATE KEY-----",
            body,
        ),
        chars(ALNUM + "+/", 64, 200),
    ),
    st.builds(
        lambda user, password: (
            CredentialKind.URL_PASSWORD,
            f"postgres://{user}:{password}@db.internal:5432/app",
            password,
        ),
        chars(string.ascii_lowercase, 1, 12),
        chars(ALNUM + "!#$%^*()-_+=~.", 8, 32),
    ),
    st.builds(
        lambda key: (
            CredentialKind.AZURE_ACCOUNT_KEY,
            "DefaultEndpointsProtocol=https;AccountName=acct;Account"
            + "Key="
            + key
            + "==;EndpointSuffix=core.windows.net",
            key + "==",
        ),
        chars(ALNUM + "+/", 86),
    ),
)

# Separators a credential can sit between in a log line, a config file or an argument.
SURROUNDINGS = st.tuples(
    st.text(max_size=40),
    st.sampled_from([" ", "\n", "\t", " = ", ": "]),
    st.sampled_from([" ", "\n", "\t", ";", ","]),
    st.text(max_size=40),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(CREDENTIALS, SURROUNDINGS)
def test_credentials_are_found_and_masked_anywhere_in_a_text(
    credential: tuple[CredentialKind, str, str], around: tuple[str, str, str, str]
) -> None:
    kind, text, secret = credential
    before, left, right, after = around
    assume(secret not in before + after and text.count(secret) == 1)
    assume(not is_inert(secret))  # `%TOKEN%`, `$(VAR)`: documented placeholders
    line = before + left + text + right + after
    assert kind in find_credentials(None, text)
    assert kind in {m.kind for m in locate_credentials(None, line)}
    assert secret not in redact(line)


@settings(max_examples=300)
@given(
    st.sampled_from(["password", "DB_PASSWORD", "adminPasswd", "smtp.pass", "PASSPHRASE"]),
    st.text(string.printable.strip(), min_size=1, max_size=40),
)
def test_a_literal_under_a_password_name_is_a_password_unless_inert(name: str, value: str) -> None:
    kinds = find_credentials(name, value)
    if is_inert(value) or value.startswith(("/", "./", "~/", "file:")) or "://" in value:
        return
    assert kinds, f"{name}={value!r} not recognised"
    assert re.fullmatch(r"\[REDACTED:[a-z-]+\]", redact_value(name, value))


@given(st.text())
@example("password=hunter2 token: 'abc12345' url=https://u:pa55word@h/")
@example("-----BEGIN RSA PRIVATE KEY-----\nunterminated")
def test_redaction_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@given(st.one_of(st.none(), st.text(max_size=80)), st.text(max_size=400))
def test_detector_is_total(name: str | None, value: str) -> None:
    kinds = find_credentials(name, value)
    assert all(isinstance(k, CredentialKind) for k in kinds)
    assert len(kinds) == len(set(kinds))
    for match in locate_credentials(name, value):
        assert 0 <= match.start < match.end <= len(value)


SECRET_NAMES = st.sampled_from(
    [
        "DB_PASSWORD",
        "API_TOKEN",
        "client_secret",
        "apiKey",
        "AWS_SECRET_ACCESS_KEY",
        "SIGNING_KEY",
        "credentials",
    ]
)


@given(
    SECRET_NAMES,
    st.from_regex(r"[A-Z_][A-Z0-9_]{0,30}", fullmatch=True),
    st.sampled_from(["$({})", "${{{}}}", "{{{{ .Values.{} }}}}", "__{}__", "#{{{}}}#"]),
)
def test_references_are_never_credentials(name: str, variable: str, form: str) -> None:
    assert find_credentials(name, form.format(variable)) == []


@given(st.text(string.ascii_lowercase + " \n", max_size=300))
def test_plain_prose_is_left_alone(text: str) -> None:
    assert find_credentials(None, text) == []
    assert redact(text) == text


# --- decisions, by example ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "strength"),
    [
        ("DB_PASSWORD", NameStrength.PASSWORD),
        ("dbPassword", NameStrength.PASSWORD),
        ("KEY_STORE_PASSWORD", NameStrength.PASSWORD),
        ("--db-pass", NameStrength.PASSWORD),
        ("API_KEY", NameStrength.SECRET),
        ("x-api-key", NameStrength.SECRET),
        ("APIKey", NameStrength.SECRET),
        ("GITHUB_TOKEN", NameStrength.SECRET),
        ("OAUTH_CLIENT_SECRET", NameStrength.SECRET),
        ("VAULT_SECRET_ID", NameStrength.SECRET),
        ("LICENSE_KEY", NameStrength.SECRET),
        ("ENCRYPTION_SALT", NameStrength.WEAK),
        ("CACHE_KEY", NameStrength.WEAK),
        ("PASSWORD_FILE", None),
        ("MIN_PASSWORD_LENGTH", None),
        ("TOKEN_TTL", None),
        ("SECRET_NAME", None),
        ("API_KEY_HEADER", None),
        ("KMS_KEY_ID", None),
        ("AWS_ACCESS_KEY_ID", None),
        ("PUBLIC_KEY", None),
        ("TOKENIZER", None),
        ("BYPASS_CACHE", None),
        ("LOG_LEVEL", None),
        (None, None),
    ],
)
def test_name_strength(name: str | None, strength: NameStrength | None) -> None:
    assert secret_name_strength(name) == strength


@pytest.mark.parametrize(
    ("name", "value", "kinds"),
    [
        ("DB_PASSWORD", "changeme", [CredentialKind.PASSWORD]),
        ("DB_PASSWORD", "P@ssw0rd@1", [CredentialKind.PASSWORD]),
        ("DB_PASSWORD", "<password>", []),
        ("DB_PASSWORD", "********", []),
        ("DB_PASSWORD", "[REDACTED]", []),
        ("API_TOKEN", "1234", []),
        ("API_TOKEN", "abcd", [CredentialKind.NAMED_SECRET]),
        ("CACHE_KEY", "user-sessions-v2", []),
        ("CACHE_KEY", "9f8e7d6c5b4a39281706f5e4d3c2b1a0", [CredentialKind.NAMED_SECRET]),
        ("JAVA_OPTS", "-Xmx1g -Dspring.datasource.password=Sup3rS3cret", [CredentialKind.PASSWORD]),
        ("CALLBACK", "https://shop.example/reset?token=Zx81kLq0", [CredentialKind.NAMED_SECRET]),
        ("GITHUB_TOKEN", FAKES["github"].text, [CredentialKind.GITHUB_TOKEN]),
        ("SA_JSON", FAKES["gcp"].text, [CredentialKind.GCP_SERVICE_ACCOUNT_KEY]),
        ("AWS_SECRET_ACCESS_KEY", FAKES["aws-secret"].text, [CredentialKind.AWS_SECRET_ACCESS_KEY]),
        ("CHECKSUM", FAKES["aws-secret"].text, []),
        ("IMAGE", "nginx@sha256:" + "ab" * 32, []),
        ("REQUEST_ID", "4f1c2d3e-5a6b-7c8d-9e0f-1a2b3c4d5e6f", []),
    ],
)
def test_find_credentials(name: str, value: str, kinds: list[CredentialKind]) -> None:
    assert find_credentials(name, value) == kinds


def test_redact_masks_only_the_secret_part_and_says_what_it_was() -> None:
    line = "connecting to postgres://shop:" + "Vq8mZ2rLx5" + "@db:5432 as shop"
    assert redact(line) == "connecting to postgres://shop:[REDACTED:url-password]@db:5432 as shop"


def test_redact_handles_settings_in_many_syntaxes() -> None:
    text = (
        'password=hunter22 {"api_key": "k-91xq-77"} <secret>s3cr3t-v4l</secret> '
        "--token Zq81Lk0p --port 8080 token_ttl=3600"
    )
    redacted = redact(text)
    for secret in ("hunter22", "k-91xq-77", "s3cr3t-v4l", "Zq81Lk0p"):
        assert secret not in redacted
    assert "--port 8080" in redacted and "token_ttl=3600" in redacted


def test_redact_data_uses_keys_as_names() -> None:
    row = {
        "user": "shop",
        "password": "hunter22",
        "retries": 3,
        "port": 5432,
        "nested": [{"client_secret": "x9z8y7w6"}, FAKES["github"].text],
        "pin": True,
    }
    redacted = redact_data(row)
    assert redacted["user"] == "shop" and redacted["retries"] == 3 and redacted["port"] == 5432
    assert redacted["password"] == "[REDACTED:password]"
    assert redacted["nested"][0]["client_secret"] == "[REDACTED:named-secret]"
    assert redacted["nested"][1] == "[REDACTED:github-token]"
    assert redact_data({"db_password": 80417723}) == {"db_password": "[REDACTED:password]"}


def test_unterminated_private_key_is_masked_to_the_end() -> None:
    text = "key:\n-----BEGIN " + "EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk"
    assert redact(text) == "key:\n[REDACTED:private-key]"


def test_shannon_entropy() -> None:
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == pytest.approx(2.0)


@pytest.mark.parametrize(
    "text",
    [
        "a-" * 50_000
        + "password"
        + "x" * 50_000
        + "eyJ"
        + "a" * 50_000
        + "."
        + "-----BEGIN PRIVATE KEY-----" * 200
        + "sk-"
        + "A" * 50_000,
        "password:" * 100_000,
        'password="' * 100_000,
        "authorization: " * 50_000,
        "p=1 password=abcdef " * 40_000,
        "ab://x:y@" * 50_000,
        "{{" * 100_000,
    ],
    ids=["near-misses", "keys", "quotes", "headers", "settings", "urls", "templates"],
)
def test_hostile_text_takes_linear_time(text: str) -> None:
    # About a megabyte each, built so that patterns almost match everywhere; a quadratic
    # pattern or pass would take minutes here, not seconds.
    start = time.perf_counter()
    redact(text)
    find_credentials("db_password", text)
    assert time.perf_counter() - start < 15


# The settings scanners reject keys without a secret-sounding stem inside the regular
# expression. The plain patterns below, filtered by the stem test afterwards, are the
# reference they must agree with on any text.
_REFERENCE_SETTING_PATTERNS = (
    re.compile(
        r"(?<![A-Za-z0-9_.])-{0,2}(?P<key>[A-Za-z][A-Za-z0-9_.-]{0,63})"
        r"[\"']?[ \t]{0,3}[:=][ \t]{0,3}"
    ),
    re.compile(
        r"(?<![A-Za-z0-9_.-])--(?P<key>[A-Za-z][A-Za-z0-9_.-]{0,63})[ \t]{1,3}(?=[^\s\"'&-])"
    ),
    re.compile(r"<(?P<key>[A-Za-z][A-Za-z0-9_.-]{0,63})>"),
)


def _reference_setting_matches(text: str) -> list[CredentialMatch]:
    found = []
    for pattern in _REFERENCE_SETTING_PATTERNS:
        xml = pattern is _REFERENCE_SETTING_PATTERNS[2]
        covered = 0
        for match in pattern.finditer(text):
            key = match.group("key")
            if match.start() < covered or not redaction._may_be_secret_name(key):
                continue
            span = redaction._value_span(text, match.end(), xml=xml)
            if span is None:
                continue
            start, end = span
            if xml and not text.startswith(f"</{key}>", end):
                continue
            kind = redaction._named_kind(key, text[start:end])
            if kind is not None:
                covered = end
                found.append(CredentialMatch(kind, start, end))
    return found


_SETTING_PIECES = st.sampled_from(
    [
        "password",
        "PASS",
        "db_",
        "x",
        "api",
        "Key",
        "token",
        "-",
        "--",
        "_",
        ".",
        ":",
        "=",
        " ",
        "\t",
        "\n",
        '"',
        "'",
        "<",
        ">",
        "</",
        "/",
        "hunter2",
        "s3cr3tValue9",
        "$(X)",
        "a" * 70,
        "db.password: ",
        "x.token=",
        "--api-key ",
        "<auth.pw>",
        "\u0130",  # İ: lower-cased, it becomes two characters
        "ab-",
        "url",
        "tokenTTL",
        "pw",
        "0",
        "&",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_SETTING_PIECES, max_size=40).map("".join))
@example("spring.datasource.password: hunter2")
@example("\u0130" * 20 + "\npw: hunter2\nother: a line long enough to be shifted into")
@example("a-password: hunter2 --token abcdef <secret>xyz</secret> " + "b" * 70 + "-pw=12345")
def test_settings_scanners_agree_with_the_plain_patterns(text: str) -> None:
    assert list(redaction._setting_matches(text)) == _reference_setting_matches(text)


# Pieces that make each finder fire: every shape's needle, in any case, and the stems.
_CLUE_PIECES = st.sampled_from(
    sorted({n for s in redaction._SHAPES for n in s.needles} | {"Pass", "TOKEN", "key", "Auth"})
)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(st.none(), st.lists(st.one_of(_CLUE_PIECES, st.text(max_size=8))).map("".join)),
    st.lists(
        st.one_of(
            _CLUE_PIECES, st.text(max_size=12), _SETTING_PIECES, CREDENTIALS.map(lambda c: c[1])
        )
    ).map("".join),
)
@example("DB_PASSWORD", "hunter2")
@example(None, "AccountKey=" + "A" * 30)
@example(None, "postgres://app:hunter2@db")
def test_the_clue_filter_never_hides_a_match(name: str | None, value: str) -> None:
    if redaction._holds_no_clue(name, value):
        assert list(redaction._shape_matches(value)) == []
        assert list(redaction._setting_matches(value)) == []
        assert name is None or redaction._named_kind(name, value) is None
