"""Recognise credential-like values, and redact them: the one place that knows how.

Checks use it to say *where* a credential is (which kind, which field) without ever
saying *what* it is; logs, database rows and outputs use `redact` / `redact_data` so
that a value which slipped into free text is masked before it is written anywhere.

Two kinds of evidence, combined:

* Shapes that identify a credential on their own (AWS key ids, private key blocks,
  GitHub / GitLab / Slack / Stripe tokens, JWTs, passwords in URLs ...). These are
  searched for anywhere in a text.
* A secret-sounding *name* (of an env var, a ConfigMap key, a `key=value` setting inside
  a text, a command-line flag) with a literal value. How much the value must look like a
  credential depends on how clearly the name says "secret":

  - password names (password, passwd, pwd, passphrase, pass): any literal value counts,
    including "changeme" or "admin": a default password deployed as is is still a
    credential in plain configuration (and a weak one);
  - secret names (secret, token, credential, api key, private key, access key ...):
    any literal of a few characters that is not a small number;
  - weak names (key, auth, salt, signature, license ...): only values that look
    generated (long, mixed letters and digits, high Shannon entropy), because
    `CACHE_KEY=users` is not a secret but `LICENSE_KEY=<random>` is.

  A name that describes *about* a secret rather than holding one is not secret-sounding:
  `PASSWORD_FILE`, `TOKEN_TTL`, `SECRET_NAME`, `API_KEY_HEADER`, `KMS_KEY_ID`, `PUBLIC_KEY`.

Values that cannot be a credential never count under a name: empty, booleans and similar
configuration words, references resolved elsewhere (`$(VAR)`, `${VAR}`, `{{ .Values.x }}`,
`__TOKEN__`, `#{Token}#`, `@token@`, `%TOKEN%`, `<password>`), masks (`****`,
`[REDACTED]`), file paths and URLs without credentials in them.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum, StrEnum
from functools import lru_cache
from typing import Any


class CredentialKind(StrEnum):
    """What a credential-like value was recognised as. The value is a stable slug (used in
    masks); `label` is the phrase messages use."""

    AWS_ACCESS_KEY_ID = "aws-access-key-id"
    AWS_SECRET_ACCESS_KEY = "aws-secret-access-key"
    GCP_SERVICE_ACCOUNT_KEY = "gcp-service-account-key"
    GOOGLE_API_KEY = "google-api-key"
    AZURE_ACCOUNT_KEY = "azure-account-key"
    AZURE_SAS_SIGNATURE = "azure-sas-signature"
    PRIVATE_KEY = "private-key"
    GITHUB_TOKEN = "github-token"
    GITLAB_TOKEN = "gitlab-token"
    SLACK_TOKEN = "slack-token"
    SLACK_WEBHOOK = "slack-webhook"
    STRIPE_KEY = "stripe-key"
    NPM_TOKEN = "npm-token"
    SENDGRID_KEY = "sendgrid-key"
    AI_API_KEY = "ai-api-key"
    JWT = "jwt"
    URL_PASSWORD = "url-password"
    AUTHORIZATION_HEADER = "authorization-header"
    # Recognised by the name it is stored under rather than by its shape.
    PASSWORD = "password"
    NAMED_SECRET = "named-secret"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def by_name_only(self) -> bool:
        """Whether the kind rests on a name rather than on the value's own shape."""
        return self in (CredentialKind.PASSWORD, CredentialKind.NAMED_SECRET)


_LABELS = {
    CredentialKind.AWS_ACCESS_KEY_ID: "AWS access key ID",
    CredentialKind.AWS_SECRET_ACCESS_KEY: "AWS secret access key",
    CredentialKind.GCP_SERVICE_ACCOUNT_KEY: "GCP service account key",
    CredentialKind.GOOGLE_API_KEY: "Google API key",
    CredentialKind.AZURE_ACCOUNT_KEY: "Azure account or shared access key",
    CredentialKind.AZURE_SAS_SIGNATURE: "Azure shared access signature",
    CredentialKind.PRIVATE_KEY: "private key",
    CredentialKind.GITHUB_TOKEN: "GitHub token",
    CredentialKind.GITLAB_TOKEN: "GitLab token",
    CredentialKind.SLACK_TOKEN: "Slack token",
    CredentialKind.SLACK_WEBHOOK: "Slack webhook URL",
    CredentialKind.STRIPE_KEY: "Stripe API key",
    CredentialKind.NPM_TOKEN: "npm token",
    CredentialKind.SENDGRID_KEY: "SendGrid API key",
    CredentialKind.AI_API_KEY: "AI provider API key",
    CredentialKind.JWT: "JSON Web Token",
    CredentialKind.URL_PASSWORD: "password in a URL",
    CredentialKind.AUTHORIZATION_HEADER: "Authorization header credential",
    CredentialKind.PASSWORD: "literal password",
    CredentialKind.NAMED_SECRET: "literal secret, token or key",
}


@dataclass(frozen=True, slots=True)
class CredentialMatch:
    """Where in a text a credential was recognised: `text[start:end]` is the secret part."""

    kind: CredentialKind
    start: int
    end: int


class NameStrength(Enum):
    """How clearly a name says that its value is a secret."""

    PASSWORD = "password"
    SECRET = "secret"
    WEAK = "weak"


# --- shapes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Shape:
    kind: CredentialKind
    pattern: re.Pattern[str]
    group: int  # the group holding the secret part
    # Literals one of which every match contains: a cheap test that skips the regex on
    # texts that cannot match (most of them). Compared against the lower-cased text when
    # `folded`.
    needles: tuple[str, ...]
    folded: bool = False


# Every quantifier is bounded or runs over a class the next token cannot start with, so a
# hostile text cannot make matching slow.
_SHAPES: tuple[_Shape, ...] = (
    _Shape(
        CredentialKind.PRIVATE_KEY,
        re.compile(
            r"-----BEGIN[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----.*?"
            r"(?:-----END[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----|\Z)",
            re.DOTALL,
        ),
        0,
        ("PRIVATE KEY",),
    ),
    _Shape(
        CredentialKind.AWS_ACCESS_KEY_ID,
        re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}(?![A-Z0-9])"),
        0,
        ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
    ),
    _Shape(
        CredentialKind.GITHUB_TOKEN,
        re.compile(
            r"\b(?:(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,251})\b"
        ),
        0,
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    _Shape(
        CredentialKind.GITLAB_TOKEN,
        re.compile(r"\bgl(?:pat|dt|rt|ptt)-[A-Za-z0-9_-]{20,255}"),
        0,
        ("glpat-", "gldt-", "glrt-", "glptt-"),
    ),
    _Shape(
        CredentialKind.SLACK_TOKEN, re.compile(r"\bxox[abeprs]-[A-Za-z0-9-]{10,255}"), 0, ("xox",)
    ),
    _Shape(
        CredentialKind.SLACK_WEBHOOK,
        re.compile(
            r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]{20,255}"
        ),
        0,
        ("hooks.slack.com",),
    ),
    _Shape(
        CredentialKind.STRIPE_KEY,
        re.compile(r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,255}\b"),
        0,
        ("k_live_", "k_test_"),
    ),
    _Shape(
        CredentialKind.GOOGLE_API_KEY,
        re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
        0,
        ("AIza",),
    ),
    _Shape(CredentialKind.NPM_TOKEN, re.compile(r"\bnpm_[A-Za-z0-9]{36}\b"), 0, ("npm_",)),
    _Shape(
        CredentialKind.SENDGRID_KEY,
        re.compile(r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"),
        0,
        ("SG.",),
    ),
    _Shape(
        CredentialKind.AI_API_KEY,
        re.compile(
            r"\bsk-(?:ant-[a-z]{2,10}\d\d-[A-Za-z0-9_-]{80,255}"
            r"|(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{10,200}T3BlbkFJ[A-Za-z0-9_-]{10,200})"
        ),
        0,
        ("sk-ant-", "T3BlbkFJ"),
    ),
    _Shape(
        CredentialKind.JWT,
        re.compile(r"\beyJ[A-Za-z0-9_-]{8,4096}\.eyJ[A-Za-z0-9_-]{8,8192}\.[A-Za-z0-9_-]{0,4096}"),
        0,
        (".eyJ",),
    ),
    _Shape(
        CredentialKind.AZURE_ACCOUNT_KEY,
        re.compile(
            r"(?i)\b(?:AccountKey|SharedAccessKey)[ \t]{0,3}=[ \t]{0,3}"
            r"([A-Za-z0-9+/]{20,512}={0,2})"
        ),
        1,
        ("accountkey", "sharedaccesskey"),
        folded=True,
    ),
    _Shape(
        CredentialKind.AZURE_SAS_SIGNATURE,
        re.compile(r"[?&;]sig=([A-Za-z0-9%+/]{16,512}(?:%3[Dd]|=){0,2})"),
        1,
        ("sig=",),
    ),
    _Shape(
        CredentialKind.URL_PASSWORD,
        re.compile(
            r"\b[A-Za-z][A-Za-z0-9+.-]{0,20}://[^\s:/?#@\"'<>]{0,256}:([^\s/@\"'<>]{1,256})@"
        ),
        1,
        ("://",),
    ),
    _Shape(
        CredentialKind.AUTHORIZATION_HEADER,
        re.compile(
            r"(?i)\b(?:proxy-)?authorization[\"']?[ \t]{0,3}[:=][ \t]{0,3}[\"']?"
            r"(?:(?:bearer|basic|token|digest|apikey)[ \t]{1,3})?([^\s\"',;]{8,4096})"
        ),
        1,
        ("authorization",),
        folded=True,
    ),
    _Shape(
        CredentialKind.AUTHORIZATION_HEADER,
        re.compile(r"\bBearer[ \t]{1,3}([A-Za-z0-9._~+/-]{20,4096}=*)"),
        1,
        ("Bearer",),
    ),
)

# A GCP service account key file: the JSON object itself is the credential; its
# `private_key` field is the part that must never be shown.
_GCP_KEY_FILE = re.compile(r"\"type\"\s{0,5}:\s{0,5}\"service_account\"")
_GCP_PRIVATE_KEY_FIELD = re.compile(r"\"private_key(?:_id)?\"\s{0,5}:\s{0,5}\"((?:[^\"\\]|\\.)*)\"")

_AWS_SECRET_SHAPE = re.compile(r"[A-Za-z0-9/+]{40}")

# Settings inside a text. Each pattern matches only up to where the value starts; the
# value is read afterwards, and only for keys that sound secret. So a match is cheap, and
# the value of `url: https://host/?token=abc` is still scanned for its own `token=abc`.
# `name = value`, `name: value`, `"name": "value"`, `--name=value`:
_SETTING = re.compile(
    r"(?<![A-Za-z0-9_.])-{0,2}(?P<key>[A-Za-z][A-Za-z0-9_.-]{0,63})[\"']?[ \t]{0,3}[:=][ \t]{0,3}"
)
# `--password hunter2` on a command line:
_FLAG_WITH_VALUE = re.compile(
    r"(?<![A-Za-z0-9_.-])--(?P<key>[A-Za-z][A-Za-z0-9_.-]{0,63})[ \t]{1,3}(?=[^\s\"'&-])"
)
# `<password>hunter2</password>` in XML configuration:
_XML_ELEMENT = re.compile(r"<(?P<key>[A-Za-z][A-Za-z0-9_.-]{0,63})>")
_BARE_VALUE = re.compile(r"[^\s\"'&]{1,512}")
_QUOTED_VALUE = {quote: re.compile(f"{quote}([^{quote}\\n]{{1,512}}){quote}") for quote in "\"'"}
_XML_VALUE = re.compile(r"[^<\n]{1,512}")
# Every secret-sounding name contains one of these; a cheap test before the full one.
_STEMS = "pass|pw|secret|token|cred|key|auth|salt|hmac|sig|seed|licen|sas|contrasena"
_NAME_STEMS = re.compile(_STEMS, re.IGNORECASE)
# The same on lower-cased ASCII text: several times faster than ignoring case over a
# whole file.
_LOWER_STEMS = re.compile(_STEMS)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --- names --------------------------------------------------------------------------------

_PASSWORD_SUBSTRINGS = ("password", "passwd", "passphrase")
_PASSWORD_WORDS = frozenset({"pass", "pwd", "pw", "passwort", "contrasena"})
_SECRET_WORDS = _words(
    """
    secret secrets token tokens credential credentials creds cred apikey apitoken apisecret
    accesstoken authtoken refreshtoken idtoken bearertoken clientsecret secretkey
    privatekey accesskey signingkey encryptionkey masterkey accountkey sharedkey
    sharedaccesskey sas
    """
)
# Words that make a following "key" a secret one: API_KEY, PRIVATE_KEY, APP_KEY ...
_KEY_QUALIFIERS = _words(
    """
    api private access secret signing sign encryption encrypt master account shared client
    auth admin root session service webhook hmac jwt app crypto cipher storage ssh gpg pgp
    deploy decryption aes license licence
    """
)
_WEAK_WORDS = _words(
    """
    key keys auth salt hmac signature sig seed license licence
    """
)
# Words that, after the secret word, describe the secret instead of holding it.
_ABOUT_WORDS = _words(
    """
    file files path paths dir dirs directory folder url urls uri uris endpoint endpoints
    host hosts hostname port name names ttl expiry expires expire expiration expired
    lifetime duration timeout interval age length len size min max minimum maximum count
    limit policy policies complexity pattern regex rotation rotate enabled enable disabled
    disable required require header headers type mode method algorithm algo alg format
    encoding ref reference arn location store provider backend manager source mount version
    prefix suffix field env namespace label selector annotation seconds secs sec minutes
    mins hours days ms issuer audience scope scopes realm claim claims cache template
    strategy kind class lookup validation hint hints prompt placeholder rules schema usage
    """
)
# Words anywhere in a name that mean the value is not secret at all.
_PUBLIC_WORDS = frozenset({"public", "publishable", "pub", "pubkey"})
# "id" describes the thing before it only for these (KMS_KEY_ID, TOKEN_ID); a Vault
# AppRole SECRET_ID is a credential.
_IDENTIFIED_WORDS = frozenset({"key", "keys", "token", "tokens", "accesskey"})

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_ALNUM = re.compile(r"[^A-Za-z0-9]+")
_TRAILING_DIGITS = re.compile(r"\d+$")


def name_tokens(name: str) -> list[str]:
    """`DB_PASSWORD` / `dbPassword` / `db.password` -> ["db", "password"]."""
    spaced = _CAMEL_BOUNDARY.sub("_", name[:256])
    tokens = (_TRAILING_DIGITS.sub("", t.lower()) for t in _NON_ALNUM.split(spaced))
    return [t for t in tokens if t]


def _may_be_secret_name(name: str) -> bool:
    # Ignoring case costs ten times more than lower-casing an ASCII name first.
    if name.isascii():
        return _LOWER_STEMS.search(name.lower()) is not None
    return _NAME_STEMS.search(name) is not None


def secret_name_strength(name: str | None) -> NameStrength | None:
    """How clearly `name` says its value is a secret, or None when it does not."""
    if not name or not _may_be_secret_name(name):
        return None
    return _name_strength(name)


@lru_cache(maxsize=4096)
def _name_strength(name: str) -> NameStrength | None:
    tokens = name_tokens(name)
    if any(t in _PUBLIC_WORDS for t in tokens):
        return None
    strongest: NameStrength | None = None
    last_secret_word = -1
    for index, token in enumerate(tokens):
        strength = _token_strength(token, tokens[index - 1] if index else "")
        if strength is None:
            continue
        last_secret_word = index
        if strongest is None or _STRENGTH_ORDER[strength] > _STRENGTH_ORDER[strongest]:
            strongest = strength
    if strongest is None or _describes_a_secret(tokens, last_secret_word):
        return None
    return strongest


_STRENGTH_ORDER = {NameStrength.WEAK: 0, NameStrength.SECRET: 1, NameStrength.PASSWORD: 2}


def _token_strength(token: str, previous: str) -> NameStrength | None:
    if token in _PASSWORD_WORDS or any(word in token for word in _PASSWORD_SUBSTRINGS):
        return NameStrength.PASSWORD
    if token in _SECRET_WORDS:
        return NameStrength.SECRET
    if token in ("key", "keys") and previous in _KEY_QUALIFIERS:
        return NameStrength.SECRET
    if token in _WEAK_WORDS:
        return NameStrength.WEAK
    return None


def _describes_a_secret(tokens: list[str], last_secret_word: int) -> bool:
    """PASSWORD_FILE, TOKEN_TTL, KMS_KEY_ID: the name is about a secret, not one."""
    after = tokens[last_secret_word + 1 :]
    if any(t in _ABOUT_WORDS for t in after):
        return True
    return (
        bool(after)
        and after[0] in ("id", "ids")
        and tokens[last_secret_word] in (_IDENTIFIED_WORDS)
    )


# --- values -------------------------------------------------------------------------------

# References to a value kept elsewhere. A value that contains one of these is composed at
# deploy or run time (`Bearer $(TOKEN)`, `postgres://app:${DB_PASSWORD}@db`) ...
_REFERENCE = re.compile(
    r"\$\([A-Za-z_][A-Za-z0-9_.-]{0,255}\)"  # Kubernetes dependent env var
    r"|\$\{[^{}\n]{1,256}\}"  # shell, envsubst, Spring, Compose
    r"|\{\{[^{}\n]{0,512}\}\}"  # Helm / Go / Jinja templates left unrendered
    r"|#\{[^{}\n]{1,256}\}#?"  # Azure DevOps replace tokens, Octopus
)
# ... while these markers count only as the whole value: `P@ssw0rd@1` is a password.
_WHOLE_VALUE_PLACEHOLDER = re.compile(
    r"__[A-Za-z0-9_]{1,128}__"  # token-replacement tools
    r"|@[A-Za-z0-9_.-]{1,128}@"  # Maven / Gradle resource filtering
    r"|%[A-Za-z0-9_]{1,128}%"  # Windows-style variables
    r"|<[^<>\n]{1,128}>"  # <password>, <your-token-here>
)
_MASK = re.compile(r"[*xX•#._-]+")
_CONFIG_WORDS = _words(
    """
    true false yes no on off none null nil undefined enabled disabled required optional
    empty n/a - auto default redacted hidden masked omitted unset
    """
)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,20}://\S*")
_PATH = re.compile(r"(?:/|\./|\.\./|~/|file:)\S*")
_REDACTED_PREFIX = "[REDACTED"


def shannon_entropy(text: str) -> float:
    """Bits per character of `text`'s own character distribution (0.0 for empty text)."""
    if not text:
        return 0.0
    length = len(text)
    return -sum(n / length * math.log2(n / length) for n in Counter(text).values())


def looks_generated(value: str) -> bool:
    """Whether a value looks machine-generated: long, letters and digits, high entropy."""
    if len(value) < 16 or any(c.isspace() for c in value):
        return False
    if not (any(c.isalpha() for c in value) and any(c.isdigit() for c in value)):
        return False
    return shannon_entropy(value) >= min(3.5, 0.8 * math.log2(len(value)))


def is_inert(value: str) -> bool:
    """Values that cannot be a credential whatever they are named: empty, configuration
    words, masks, and references to a value kept elsewhere."""
    text = value.strip()
    if not text or text.lower() in _CONFIG_WORDS or text.startswith(_REDACTED_PREFIX):
        return True
    if _MASK.fullmatch(text):
        return True
    return bool(_WHOLE_VALUE_PLACEHOLDER.fullmatch(text) or _REFERENCE.search(text))


def _names_a_location(value: str) -> bool:
    """A path or a URL names where a credential is, not the credential (a URL's own
    password is found by its shape)."""
    text = value.strip()
    if _URL.fullmatch(text):
        return True
    return bool(_PATH.fullmatch(text)) and not looks_generated(text)


def _plausible_under(strength: NameStrength, value: str) -> bool:
    if is_inert(value) or _names_a_location(value):
        return False
    text = value.strip()
    if strength is NameStrength.PASSWORD:
        return True
    if strength is NameStrength.SECRET:
        return len(text) >= 4 and not (text.isdigit() and len(text) <= 6)
    return looks_generated(text)


def _named_kind(name: str, value: str) -> CredentialKind | None:
    """The kind of credential a literal value is, judged by the name it is stored under."""
    strength = secret_name_strength(name)
    if strength is None or not _plausible_under(strength, value):
        return None
    text = value.strip()
    if (
        strength is not NameStrength.PASSWORD
        and _may_name_an_aws_secret(name)
        and _AWS_SECRET_SHAPE.fullmatch(text)
        and looks_generated(text)
    ):
        return CredentialKind.AWS_SECRET_ACCESS_KEY
    return (
        CredentialKind.PASSWORD
        if strength is NameStrength.PASSWORD
        else (CredentialKind.NAMED_SECRET)
    )


@lru_cache(maxsize=4096)
def _may_name_an_aws_secret(name: str) -> bool:
    tokens = name_tokens(name)
    return "aws" in tokens or "secret" in tokens


# --- finding ------------------------------------------------------------------------------


# Every shape's needles in one pattern: most texts hold none, and one search says so
# faster than a test per shape.
_ANY_NEEDLE = re.compile("|".join(re.escape(n) for s in _SHAPES if not s.folded for n in s.needles))
_ANY_FOLDED_NEEDLE = re.compile(
    "|".join(re.escape(n) for s in _SHAPES if s.folded for n in s.needles)
)


def _shape_matches(text: str) -> Iterator[CredentialMatch]:
    folded = text.lower()
    if _ANY_NEEDLE.search(text) is None and _ANY_FOLDED_NEEDLE.search(folded) is None:
        shapes: tuple[_Shape, ...] = ()
    else:
        shapes = _SHAPES
    for shape in shapes:
        haystack = folded if shape.folded else text
        if not any(needle in haystack for needle in shape.needles):
            continue
        for match in shape.pattern.finditer(text):
            start, end = match.span(shape.group)
            if start < end and not is_inert(text[start:end]):
                yield CredentialMatch(shape.kind, start, end)
    if '"private_key' in text and _GCP_KEY_FILE.search(text):
        for match in _GCP_PRIVATE_KEY_FIELD.finditer(text):
            start, end = match.span(1)
            if start < end:
                yield CredentialMatch(CredentialKind.GCP_SERVICE_ACCOUNT_KEY, start, end)


def _value_span(text: str, start: int, *, xml: bool = False) -> tuple[int, int] | None:
    """Where the value that starts at `start` ends: at its closing quote, or at the first
    character that ends a bare value."""
    if xml:
        match = _XML_VALUE.match(text, start)
        return match.span() if match else None
    quoted = _QUOTED_VALUE.get(text[start : start + 1])
    match = quoted.match(text, start) if quoted else _BARE_VALUE.match(text, start)
    if match is None:
        return None
    return match.span(1) if quoted else match.span()


def _stem_lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of each line holding a secret-sounding stem, in order."""
    lines = []
    position = 0
    # Lower-casing keeps positions only in ASCII (`İ` becomes two characters).
    haystack, stems = (text.lower(), _LOWER_STEMS) if text.isascii() else (text, _NAME_STEMS)
    while (stem := stems.search(haystack, position)) is not None:
        start = text.rfind("\n", 0, stem.start()) + 1
        end = text.find("\n", stem.end())
        end = len(text) if end < 0 else end
        lines.append((start, end))
        position = end
    return lines


def _setting_matches(text: str) -> Iterator[CredentialMatch]:
    # A setting and its value never span lines, and its key holds a stem: only the few
    # lines with a stem are scanned (a configuration file has keys on most lines).
    lines = _stem_lines(text)
    for pattern in (_SETTING, _FLAG_WITH_VALUE, _XML_ELEMENT) if lines else ():
        xml = pattern is _XML_ELEMENT
        covered = 0  # end of the last secret value found: keys inside it are masked anyway
        for line_start, line_end in lines:
            for match in pattern.finditer(text, line_start, line_end):
                key = match.group("key")
                if match.start() < covered or not _may_be_secret_name(key):
                    continue
                span = _value_span(text, match.end(), xml=xml)
                if span is None:
                    continue
                start, end = span
                if xml and not text.startswith(f"</{key}>", end):
                    continue
                kind = _named_kind(key, text[start:end])
                if kind is not None:
                    covered = end
                    yield CredentialMatch(kind, start, end)


def _holds_no_clue(name: str | None, value: str) -> bool:
    """Whether no finder could match: no shape's needle in the value, no secret-sounding
    stem in it or in its name. Most values hold none, and saying so costs two searches.
    (Each folded needle holds a stem.) Only for ASCII, as `_stem_lines` reads stems."""
    return (
        (name is None or not _may_be_secret_name(name))
        and value.isascii()
        and _LOWER_STEMS.search(value.lower()) is None
        and _ANY_NEEDLE.search(value) is None
    )


def locate_credentials(name: str | None, value: str) -> list[CredentialMatch]:
    """Every credential-like part of `value`, stored under `name` (an env var, a ConfigMap
    key, a flag; None for free text). Spans may overlap; sorted by position."""
    if _holds_no_clue(name, value):
        return []
    matches = list(_shape_matches(value))
    matches.extend(_setting_matches(value))
    if name is not None and (kind := _named_kind(name, value)) is not None:
        matches.append(CredentialMatch(kind, 0, len(value)))
    return sorted(set(matches), key=lambda m: (m.start, -m.end, m.kind.value))


def reported_matches(matches: list[CredentialMatch]) -> list[CredentialMatch]:
    """The matches worth naming in a message: a shape beats a name for the same text, and
    a match inside a larger match of another shape (a private key inside a GCP key file)
    is part of it. One sweep over the shapes sorted by start, so thousands of matches in a
    hostile text stay cheap."""
    shaped = sorted((m for m in matches if not m.kind.by_name_only), key=lambda m: m.start)
    starts = [m.start for m in shaped]
    widest_so_far: list[CredentialMatch] = []  # per prefix: the shape reaching furthest
    for match in shaped:
        if not widest_so_far or match.end > widest_so_far[-1].end:
            widest_so_far.append(match)
        else:
            widest_so_far.append(widest_so_far[-1])
    kept = []
    for match in matches:
        before = bisect_right(starts, match.start)
        reaching = widest_so_far[before - 1] if before else None
        if match.kind.by_name_only:
            overlapped = (reaching is not None and reaching.end > match.start) or (
                before < len(starts) and starts[before] < match.end
            )
            if overlapped:
                continue
        elif reaching is not None and reaching.kind is not match.kind and _inside(match, reaching):
            continue
        kept.append(match)
    return kept


def _inside(inner: CredentialMatch, outer: CredentialMatch) -> bool:
    return (
        outer.start <= inner.start
        and inner.end <= outer.end
        and (outer.end - outer.start) > (inner.end - inner.start)
    )


def find_credentials(name: str | None, value: str) -> list[CredentialKind]:
    """The kinds of credential `value` (stored under `name`) looks like, most specific
    first in order of appearance, each once. Empty when it looks like none."""
    if len(value) <= _REMEMBERED_LENGTH:
        return list(_remembered_kinds(name, value))
    return list(_kinds(name, value))


# Short values repeat across a cluster (the same env in every replica set and namespace):
# their verdicts are remembered. They are in the scanned objects anyway; nothing is kept
# beyond the process.
_REMEMBERED_LENGTH = 256


@lru_cache(maxsize=16384)
def _remembered_kinds(name: str | None, value: str) -> tuple[CredentialKind, ...]:
    return _kinds(name, value)


def _kinds(name: str | None, value: str) -> tuple[CredentialKind, ...]:
    kinds: list[CredentialKind] = []
    for match in reported_matches(locate_credentials(name, value)):
        if match.kind not in kinds:
            kinds.append(match.kind)
    return tuple(kinds)


# --- redacting ----------------------------------------------------------------------------


def mask(kind: CredentialKind) -> str:
    return f"{_REDACTED_PREFIX}:{kind.value}]"


def redact_value(name: str | None, value: str) -> str:
    """`value` with every credential-like part masked; `name` is the field it is stored
    under, when known, so that `password: hunter2` is masked whole."""
    matches = locate_credentials(name, value)
    if not matches:
        return value
    pieces: list[str] = []
    cursor = 0
    for start, end, kind in _merged(matches):
        pieces.append(value[cursor:start])
        pieces.append(mask(kind))
        cursor = end
    pieces.append(value[cursor:])
    return "".join(pieces)


def redact(text: str) -> str:
    """Free text (a log line, an error message) with every recognised credential masked."""
    return redact_value(None, text)


def redact_data(data: Any, name: str | None = None) -> Any:
    """A copy of JSON-like data (dicts, lists, strings) with credentials masked; dict keys
    serve as names, so `{"password": "x"}` is masked by its key."""
    if isinstance(data, str):
        return redact_value(name, data)
    if isinstance(data, dict):
        return {
            key: redact_data(value, key if isinstance(key, str) else None)
            for key, value in data.items()
        }
    if isinstance(data, list | tuple):
        return [redact_data(item, name) for item in data]
    if isinstance(data, int | float) and not isinstance(data, bool) and name is not None:
        masked = redact_value(name, str(data))
        return data if masked == str(data) else masked
    return data


def _merged(matches: list[CredentialMatch]) -> Iterator[tuple[int, int, CredentialKind]]:
    """Overlapping spans joined, each named after its widest match."""
    current: CredentialMatch | None = None
    end = 0
    for match in matches:  # sorted by start, widest first
        if current is not None and match.start < end:
            end = max(end, match.end)
            continue
        if current is not None:
            yield current.start, end, current.kind
        current, end = match, match.end
    if current is not None:
        yield current.start, end, current.kind
