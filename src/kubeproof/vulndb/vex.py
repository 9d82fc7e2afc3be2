"""OpenVEX documents (openvex.dev, spec v0.2.0, and v0.0.1's string forms): statements
that a product is, or is not, affected by a vulnerability. A finding is judged by the
latest statement that names its advisory (by id or alias) and its product: the image
(its `pkg:oci` purl, digest or reference), optionally narrowed to subcomponents that
match the package's purl, or the package itself. `not_affected` and `fixed` make the
finding `excepted`, with the statement's justification and the document's author and
timestamp: never hidden. `affected` and `under_investigation` leave it failing, with
their notes. A document that is not OpenVEX is an error naming the file and the field."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubeproof.bounded import UnreadableFile, read_bounded_text
from kubeproof.images.packages import Package
from kubeproof.images.reader import ImageContents
from kubeproof.images.reference import RegistryReference, parse_reference
from kubeproof.images.sbom import package_url
from kubeproof.model import Status
from kubeproof.redaction import redact
from kubeproof.vulndb.match import Finding
from kubeproof.vulndb.purl import InvalidPurl, Purl, image_purl, parse_purl

CONTEXT_PREFIX = "https://openvex.dev/ns"
NOT_AFFECTED, AFFECTED, FIXED, UNDER_INVESTIGATION = (
    "not_affected",
    "affected",
    "fixed",
    "under_investigation",
)
STATUSES = (NOT_AFFECTED, AFFECTED, FIXED, UNDER_INVESTIGATION)
SUPPRESSING = (NOT_AFFECTED, FIXED)
JUSTIFICATIONS = (
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
)
MAX_BYTES = 16 << 20
MAX_TEXT = 4000
_FRACTION = re.compile(r"(\.\d{6})\d+")


class VexError(ValueError):
    """A document that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Product:
    """A product or subcomponent: its identifiers (the `@id`, `identifiers` values) and
    digests (`hashes`, as `sha256:HEX`); purls among the identifiers are parsed."""

    identifiers: tuple[str, ...]
    purls: tuple[Purl, ...] = ()
    digests: tuple[str, ...] = ()
    subcomponents: tuple[Product, ...] = ()


@dataclass(frozen=True)
class Document:
    origin: str  # the file
    id: str | None
    author: str
    role: str | None
    timestamp: datetime


@dataclass(frozen=True)
class Statement:
    document: Document
    vulnerabilities: frozenset[str]  # name, @id (and its last path segment), aliases
    products: tuple[Product, ...]
    status: str
    justification: str | None
    impact_statement: str | None
    action_statement: str | None
    status_notes: str | None
    timestamp: datetime  # the statement's own, else the document's
    number: int  # its place in the document

    def details(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "justification": self.justification,
            "impact_statement": self.impact_statement,
            "action_statement": self.action_statement,
            "status_notes": self.status_notes,
            "timestamp": self.timestamp.isoformat(),
            "document": self.document.origin,
            "document_id": self.document.id,
            "author": self.document.author,
            "role": self.document.role,
            "document_timestamp": self.document.timestamp.isoformat(),
            "statement": self.number,
        }

    def describe(self) -> str:
        why = self.justification or self.impact_statement or self.status_notes or ""
        when = self.timestamp.strftime("%Y-%m-%d")
        return (
            f"VEX {self.status}{f': {why}' if why else ''} "
            f"({self.document.author}, {when}, {self.document.origin})"
        )


# -- reading ------------------------------------------------------------------------------


def _where(origin: str, path: str) -> str:
    return f"{origin}: {path}" if path else origin


def _text(data: dict[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None or (value == "" and not required):
        if required:
            raise VexError(f"{where}: {key} is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise VexError(f"{where}.{key}: must be a non-empty string")
    if len(value) > MAX_TEXT:
        raise VexError(f"{where}.{key}: longer than {MAX_TEXT} characters")
    return redact(value.strip())  # written by people, repeated in reports


def _timestamp(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise VexError(f"{where}: must be an RFC 3339 timestamp")
    text = _FRACTION.sub(r"\1", value.strip())  # nanoseconds, as Go tools write them
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise VexError(f"{where}: {value[:60]!r} is not an RFC 3339 timestamp") from None
    if moment.tzinfo is None:
        raise VexError(f"{where}: {value[:60]!r} has no time zone")
    return moment.astimezone(UTC)


def _list(data: dict[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise VexError(f"{where}.{key}: must be a list")
    return value


def _product(value: Any, where: str, extra_subcomponents: Sequence[Any] = ()) -> Product:
    if isinstance(value, str):
        value = {"@id": value}
    if not isinstance(value, dict):
        raise VexError(f"{where}: must be a string or an object with @id or identifiers")
    identifiers = []
    if value.get("@id") is not None:
        identifiers.append(_text(value, "@id", where))
    given = value.get("identifiers", {})
    if not isinstance(given, dict):
        raise VexError(f"{where}.identifiers: must be an object")
    for key in sorted(given):
        identifiers.append(_text(given, key, f"{where}.identifiers"))
    hashes = value.get("hashes", {})
    if not isinstance(hashes, dict):
        raise VexError(f"{where}.hashes: must be an object")
    digests = []
    for algorithm in sorted(hashes):
        digest = _text(hashes, algorithm, f"{where}.hashes")
        name = str(algorithm).lower().replace("-", "")
        digests.append(f"{name}:{(digest or '').lower()}")
    if not identifiers and not digests:
        raise VexError(f"{where}: a product needs @id, identifiers or hashes")
    purls = []
    for identifier in identifiers:
        if identifier and identifier[:4].lower() == "pkg:":
            try:
                purls.append(parse_purl(identifier))
            except InvalidPurl as error:
                raise VexError(f"{where}: {error}") from None
    subcomponents = tuple(
        _product(item, f"{where}.subcomponents[{number}]")
        for number, item in enumerate([*_list(value, "subcomponents", where), *extra_subcomponents])
    )
    return Product(tuple(i for i in identifiers if i), tuple(purls), tuple(digests), subcomponents)


def _vulnerability_ids(value: Any, where: str) -> frozenset[str]:
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise VexError(f"{where}: must be a string or an object with name or @id")
    ids = set()
    for key in ("name", "@id"):
        text = _text(value, key, where)
        if text:
            ids.add(text.upper())
            ids.add(text.rstrip("/").rsplit("/", 1)[-1].upper())  # …/vuln/detail/CVE-…
    for number, alias in enumerate(_list(value, "aliases", where)):
        if not isinstance(alias, str) or not alias.strip():
            raise VexError(f"{where}.aliases[{number}]: must be a non-empty string")
        ids.add(alias.strip().upper())
    if not ids:
        raise VexError(f"{where}: names no vulnerability (name, @id or aliases)")
    return frozenset(ids)


def _statement(value: Any, where: str, document: Document, number: int) -> Statement:
    if not isinstance(value, dict):
        raise VexError(f"{where}: must be an object")
    if "vulnerability" not in value:
        raise VexError(f"{where}: vulnerability is required")
    vulnerabilities = _vulnerability_ids(value["vulnerability"], f"{where}.vulnerability")
    status = value.get("status")
    if status not in STATUSES:
        raise VexError(f"{where}.status: {status!r} is not one of {', '.join(STATUSES)}")
    justification = value.get("justification")
    if justification is not None and justification not in JUSTIFICATIONS:
        raise VexError(
            f"{where}.justification: {str(justification)[:60]!r} is not one of "
            + ", ".join(JUSTIFICATIONS)
        )
    impact = _text(value, "impact_statement", where)
    if status == NOT_AFFECTED and not (justification or impact):
        raise VexError(f"{where}: not_affected needs a justification or an impact_statement")
    products_given = _list(value, "products", where)
    if not products_given:
        raise VexError(f"{where}: products is required (the image or package purls)")
    shared_subcomponents = _list(value, "subcomponents", where)  # v0.0.1: statement-level
    products = tuple(
        _product(item, f"{where}.products[{index}]", shared_subcomponents)
        for index, item in enumerate(products_given)
    )
    moment = (
        _timestamp(value["timestamp"], f"{where}.timestamp")
        if value.get("timestamp") is not None
        else document.timestamp
    )
    return Statement(
        document,
        vulnerabilities,
        products,
        status,
        justification,
        impact,
        _text(value, "action_statement", where),
        _text(value, "status_notes", where),
        moment,
        number,
    )


def parse_vex(text: str, origin: str) -> list[Statement]:
    """The statements of one OpenVEX document; VexError naming `origin` and the field."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise VexError(f"{origin}: not valid JSON ({str(error)[:80]})") from None
    if not isinstance(data, dict):
        raise VexError(f"{origin}: an OpenVEX document is a JSON object")
    context = data.get("@context")
    if not isinstance(context, str) or not context.startswith(CONTEXT_PREFIX):
        raise VexError(f"{origin}: @context must be an OpenVEX context ({CONTEXT_PREFIX}/...)")
    where = f"{origin}: document"
    document = Document(
        origin,
        _text(data, "@id", where),
        _text(data, "author", where, required=True) or "",
        _text(data, "role", where),
        _timestamp(data.get("timestamp"), f"{origin}: timestamp"),
    )
    if "statements" not in data:
        raise VexError(f"{origin}: statements is required")
    return [
        _statement(item, _where(origin, f"statements[{number}]"), document, number)
        for number, item in enumerate(_list(data, "statements", origin))
    ]


def load_vex(paths: Iterable[str | Path]) -> list[Statement]:
    """The statements of every file, in order; VexError naming the file at fault."""
    found: list[Statement] = []
    for path in paths:
        origin = str(path)
        try:
            text = read_bounded_text(path, MAX_BYTES, origin)
        except UnreadableFile as refused:
            raise VexError(str(refused)) from None
        found.extend(parse_vex(text, origin))
    return found


# -- judging ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageIdentity:
    """What a VEX product may name an image by."""

    digest: str  # sha256:HEX
    reference: str
    registry: RegistryReference | None
    arch: str | None = None

    @classmethod
    def of(cls, contents: ImageContents) -> ImageIdentity:
        try:
            parsed = parse_reference(contents.reference)
        except Exception:  # an SBOM from the cache may carry any reference text
            parsed = None
        registry = parsed if isinstance(parsed, RegistryReference) else None
        arch = contents.platform.architecture if contents.platform else None
        return cls(contents.digest.lower(), contents.reference, registry, arch)

    def named_by(self, product: Product) -> bool:
        if self.digest in product.digests or any(
            i in (self.digest, self.reference) for i in product.identifiers
        ):
            return True
        for purl in product.purls:
            if purl.type != "oci" and purl.type != "docker":
                continue
            if purl.version is not None and purl.version.lower() != self.digest:
                continue
            if self.registry is None:
                # An image read from a file has no repository name: only its digest names it.
                if purl.version is not None:
                    return True
                continue
            if Purl("oci", "", purl.name, purl.version, purl.qualifiers).matches(
                image_purl(self.digest, self.registry, self.arch)
            ):
                return True
        return False


def _names_package(product: Product, package: Purl | None) -> bool:
    return package is not None and any(purl.matches(package) for purl in product.purls)


@dataclass
class VexIndex:
    """Statements by vulnerability id, for judging many findings."""

    statements: Sequence[Statement]
    _by_id: dict[str, list[Statement]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for statement in self.statements:
            for identifier in statement.vulnerabilities:
                self._by_id.setdefault(identifier, []).append(statement)

    def statement_for(
        self, finding: Finding, image: ImageIdentity, package_purl: Purl | None
    ) -> Statement | None:
        """The latest statement about this finding's vulnerability in this image and
        package (OpenVEX: a later statement overrides an earlier one)."""
        ids = {finding.advisory_id.upper(), *(a.upper() for a in finding.aliases)}
        candidates = {id(s): s for i in ids for s in self._by_id.get(i, [])}
        applicable = [
            statement
            for statement in candidates.values()
            if any(_applies(product, image, package_purl) for product in statement.products)
        ]
        if not applicable:
            return None
        order = {id(s): n for n, s in enumerate(self.statements)}
        return max(applicable, key=lambda s: (s.timestamp, order[id(s)]))


def _applies(product: Product, image: ImageIdentity, package: Purl | None) -> bool:
    if image.named_by(product):
        if not product.subcomponents:
            return True  # the statement is about the whole image
        return any(_names_package(sub, package) for sub in product.subcomponents)
    return _names_package(product, package)


@dataclass(frozen=True)
class Judged:
    """A finding with its status: `fail`, or `excepted` with the reason and the VEX
    statement (or kubeproof exception) behind it."""

    finding: Finding
    status: Status
    reason: str | None = None
    vex: dict[str, Any] | None = None


def package_purl(package: Package, contents: ImageContents) -> Purl | None:
    try:
        return parse_purl(package_url(package, contents.os))
    except InvalidPurl:
        return None


def judge_findings(
    findings: Iterable[Finding], contents: ImageContents, index: VexIndex
) -> list[Judged]:
    """Each finding of one image judged by the VEX statements: excepted by not_affected
    and fixed, failing (with the statement's notes) otherwise."""
    image = ImageIdentity.of(contents)
    purls: dict[Package, Purl | None] = {}
    judged = []
    for finding in findings:
        if finding.package not in purls:
            purls[finding.package] = package_purl(finding.package, contents)
        statement = (
            index.statement_for(finding, image, purls[finding.package])
            if index.statements
            else None
        )
        if statement is None:
            judged.append(Judged(finding, Status.FAIL))
        elif statement.status in SUPPRESSING:
            judged.append(
                Judged(finding, Status.EXCEPTED, statement.describe(), statement.details())
            )
        else:
            judged.append(Judged(finding, Status.FAIL, statement.describe(), statement.details()))
    return judged
