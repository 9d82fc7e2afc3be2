"""OpenVEX: parsing (hostile input gives VexError naming the file, never a traceback;
property tests), purl matching as the OpenVEX libraries do it, and how statements judge
findings (status, product, subcomponents, aliases, the latest statement)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeproof.images.manifest import Platform
from kubeproof.images.osrelease import OperatingSystem
from kubeproof.images.packages import DEB, PYPI, Package
from kubeproof.images.reader import ImageContents
from kubeproof.model import Status
from kubeproof.vulndb.match import Finding
from kubeproof.vulndb.purl import InvalidPurl, Purl, parse_purl
from kubeproof.vulndb.vex import VexError, VexIndex, judge_findings, load_vex, parse_vex

DIGEST = "sha256:" + "ab" * 32
REQUESTS = Package(PYPI, "requests", "2.31.0", location="site-packages")
LIBSSL = Package(DEB, "libssl3", "3.0.11-1~deb12u2", "amd64", "openssl", "3.0.11-1~deb12u2")
IMAGE = ImageContents(
    "registry.example.com/shop/api:1.4.2",
    DIGEST,
    Platform("linux", "amd64"),
    OperatingSystem("debian", "12"),
    (REQUESTS, LIBSSL),
)
GHSA = Finding(REQUESTS, "GHSA-9wx4-h78v-vm56", ("CVE-2024-35195",), "medium", "2.32.0", "", "PyPI")
DSA = Finding(LIBSSL, "DSA-5764-1", ("CVE-2024-5535",), "high", None, "", "Debian:12")


def document(*statements: dict[str, Any], **fields: Any) -> str:
    return json.dumps(
        {
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": "https://example.com/vex/1",
            "author": "Security Team <security@example.com>",
            "timestamp": "2024-06-01T10:00:00.123456789-02:00",
            "version": 1,
            "statements": list(statements),
            **fields,
        }
    )


def statement(product: Any, status: str = "not_affected", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "vulnerability": {"name": "CVE-2024-35195"},
        "products": [product],
        "status": status,
    }
    if status == "not_affected" and "impact_statement" not in fields:
        base["justification"] = "vulnerable_code_not_in_execute_path"
    return {**base, **fields}


def judge(text: str, *findings: Finding) -> list[tuple[Status, str | None]]:
    index = VexIndex(parse_vex(text, "vex.json"))
    return [(j.status, j.reason) for j in judge_findings(findings or (GHSA,), IMAGE, index)]


IMAGE_PURL = f"pkg:oci/api@{DIGEST.replace(':', '%3A')}"


@pytest.mark.parametrize(
    ("product", "applies"),
    [
        (IMAGE_PURL, True),
        (IMAGE_PURL + "?repository_url=registry.example.com/shop/api", True),
        (IMAGE_PURL + "?repository_url=registry.example.com/shop/api&tag=1.4.2&arch=amd64", True),
        (IMAGE_PURL + "?arch=arm64", False),  # a qualifier the image does not have
        (IMAGE_PURL + "?tag=2.0", False),
        ("pkg:oci/api", True),  # no version: every digest of that repository name
        ("pkg:oci/web@" + DIGEST, False),
        ("pkg:oci/api@sha256:" + "cd" * 32, False),
        ({"@id": "x", "hashes": {"sha-256": DIGEST.split(":")[1]}}, True),
        (DIGEST, True),
        ("registry.example.com/shop/api:1.4.2", True),
        ("pkg:pypi/requests@2.31.0", True),  # the package itself
        ("pkg:pypi/Requests", True),  # any version, PyPI names normalised
        ("pkg:pypi/requests@2.30.0", False),
        ("pkg:pypi/urllib3@2.0.0", False),
        ({"identifiers": {"purl": "pkg:pypi/requests@2.31.0"}}, True),
    ],
)
def test_products(product: Any, applies: bool) -> None:
    status, _ = judge(document(statement(product)))[0]
    assert status is (Status.EXCEPTED if applies else Status.FAIL)


def test_subcomponents_narrow_an_image_statement() -> None:
    narrowed = {"@id": IMAGE_PURL, "subcomponents": [{"@id": "pkg:pypi/requests@2.31.0"}]}
    other = {"@id": IMAGE_PURL, "subcomponents": [{"@id": "pkg:pypi/flask"}]}
    assert judge(document(statement(narrowed)))[0][0] is Status.EXCEPTED
    assert judge(document(statement(other)))[0][0] is Status.FAIL
    # v0.0.1: products and subcomponents as strings at the statement level
    old = {
        "vulnerability": "CVE-2024-35195",
        "products": [IMAGE_PURL],
        "subcomponents": ["pkg:pypi/requests"],
        "status": "fixed",
    }
    assert judge(document(old, **{"@context": "https://openvex.dev/ns"}))[0][0] is Status.EXCEPTED


def test_deb_packages_match_by_their_purl_with_qualifiers() -> None:
    dsa = statement(
        "pkg:deb/debian/libssl3?arch=amd64&distro=debian-12",
        vulnerability={"name": "DSA-5764-1"},
    )
    wrong = statement("pkg:deb/debian/libssl3?arch=arm64", vulnerability={"name": "DSA-5764-1"})
    assert judge(document(dsa), DSA)[0][0] is Status.EXCEPTED
    assert judge(document(wrong), DSA)[0][0] is Status.FAIL


def test_statuses_reasons_and_the_latest_statement() -> None:
    [(status, reason)] = judge(document(statement(IMAGE_PURL)))
    assert status is Status.EXCEPTED and reason is not None
    assert "not_affected: vulnerable_code_not_in_execute_path" in reason
    assert "Security Team" in reason and "2024-06-01" in reason and "vex.json" in reason
    affected = statement(IMAGE_PURL, "affected", action_statement="upgrade to 2.32.0")
    assert judge(document(affected))[0][0] is Status.FAIL
    investigating = statement(IMAGE_PURL, "under_investigation")
    [(status, reason)] = judge(document(investigating))
    assert status is Status.FAIL and reason and "under_investigation" in reason
    # A later statement overrides an earlier one, whatever the order in the file.
    later = statement(IMAGE_PURL, "affected", timestamp="2024-07-01T00:00:00Z")
    earlier = statement(IMAGE_PURL, timestamp="2024-05-01T00:00:00Z")
    assert judge(document(later, earlier))[0][0] is Status.FAIL
    assert judge(document({**later, "status": "fixed"}, earlier))[0][0] is Status.EXCEPTED
    # By alias or by id, and an NVD URL as @id.
    by_id = statement(IMAGE_PURL, vulnerability={"name": "GHSA-9WX4-H78V-VM56"})
    by_url = statement(
        IMAGE_PURL, vulnerability={"@id": "https://nvd.nist.gov/vuln/detail/CVE-2024-35195"}
    )
    by_alias = statement(IMAGE_PURL, vulnerability={"name": "X-1", "aliases": ["CVE-2024-35195"]})
    for item in (by_id, by_url, by_alias):
        assert judge(document(item))[0][0] is Status.EXCEPTED
    unrelated = statement(IMAGE_PURL, vulnerability={"name": "CVE-2000-0001"})
    assert judge(document(unrelated))[0][0] is Status.FAIL


def test_details_carry_the_document() -> None:
    index = VexIndex(parse_vex(document(statement(IMAGE_PURL)), "team.vex.json"))
    [judged] = judge_findings([GHSA], IMAGE, index)
    assert judged.vex is not None
    assert judged.vex["author"] == "Security Team <security@example.com>"
    assert judged.vex["justification"] == "vulnerable_code_not_in_execute_path"
    assert judged.vex["document_timestamp"] == "2024-06-01T12:00:00.123456+00:00"
    assert judged.vex["document"] == "team.vex.json"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "a JSON object"),
        (document(**{"@context": "https://example.com"}), "@context"),
        (document(author=""), "document.author"),
        (document(timestamp="yesterday"), "not an RFC 3339 timestamp"),
        (document(timestamp="2024-06-01T10:00:00"), "no time zone"),
        (
            json.dumps(
                {
                    "@context": "https://openvex.dev/ns",
                    "author": "a",
                    "timestamp": "2024-01-01T00:00:00Z",
                }
            ),
            "statements is required",
        ),
        (document(statement(IMAGE_PURL, "wontfix")), "statements[0].status"),
        (document({**statement(IMAGE_PURL), "justification": None}), "needs a justification"),
        (document(statement(IMAGE_PURL, justification="because")), "justification"),
        (document({**statement(IMAGE_PURL), "products": []}), "products is required"),
        (document(statement("pkg:")), "statements[0].products[0]"),
        (document(statement({"hashes": []})), "hashes: must be an object"),
        (document({**statement(IMAGE_PURL), "vulnerability": {}}), "names no vulnerability"),
        (document({**statement(IMAGE_PURL), "vulnerability": 7}), "vulnerability"),
    ],
)
def test_malformed_documents_name_the_file_and_field(text: str, message: str) -> None:
    with pytest.raises(VexError) as raised:
        parse_vex(text, "bad.vex.json")
    assert str(raised.value).startswith("bad.vex.json")
    assert message in str(raised.value)


def test_files(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(document(statement(IMAGE_PURL)))
    assert len(load_vex([good, good])) == 2
    with pytest.raises(VexError, match=r"cannot read .*missing\.json"):
        load_vex([tmp_path / "missing.json"])
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe{}")
    with pytest.raises(VexError, match=r"binary\.json: not UTF-8"):
        load_vex([binary])


def test_credentials_in_free_text_are_redacted() -> None:
    secret = "AKIAIOSFODNN7EXAMPLE"
    [item] = parse_vex(
        document(statement(IMAGE_PURL, impact_statement=f"key {secret} is unused")), "v.json"
    )
    assert item.impact_statement is not None and secret not in item.impact_statement


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(
    [
        "vulnerability",
        "products",
        "status",
        "justification",
        "impact_statement",
        "@id",
        "subcomponents",
        "identifiers",
        "hashes",
        "name",
        "aliases",
        "timestamp",
        "purl",
    ]
)
SHAPED = st.recursive(
    st.none() | st.text(max_size=30) | st.sampled_from(["not_affected", "fixed", IMAGE_PURL]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(JSON | st.lists(SHAPED, max_size=3))
def test_hostile_documents_raise_only_vex_error(statements: Any) -> None:
    for text in (
        json.dumps(statements),
        document(*statements) if isinstance(statements, list) else "x",
    ):
        try:
            found = parse_vex(text, "fuzz.json")
        except VexError as error:
            assert str(error).startswith("fuzz.json")
            continue
        judge_findings([GHSA, DSA], IMAGE, VexIndex(found))  # and judging never raises


PURL_PART = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/@?#%"),
    min_size=1,
    max_size=8,
).filter(lambda t: t.strip() not in ("", ".", ".."))


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60))
def test_any_text_is_a_purl_or_invalid(text: str) -> None:
    try:
        purl = parse_purl(text)
    except InvalidPurl:
        return
    assert purl.type and purl.name and purl.matches(purl)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["npm", "golang", "maven", "cargo"]),
    st.lists(PURL_PART, max_size=2),
    PURL_PART,
    PURL_PART,
    st.dictionaries(st.sampled_from(["arch", "distro", "os"]), PURL_PART, max_size=3),
)
def test_purl_round_trip_and_generality(
    kind: str, namespace: list[str], name: str, version: str, qualifiers: dict[str, str]
) -> None:
    from urllib.parse import quote

    def encoded(text: str) -> str:
        return quote(text, safe="")

    path = "/".join(encoded(p) for p in [*namespace, name])
    query = "&".join(f"{k}={encoded(v)}" for k, v in sorted(qualifiers.items()))
    text = f"pkg:{kind}/{path}@{encoded(version)}" + (f"?{query}" if query else "")
    specific = parse_purl(text)
    assert specific == Purl(
        kind, "/".join(namespace), name, version, tuple(sorted(qualifiers.items()))
    )
    general = parse_purl(f"pkg:{kind}/{path}")
    assert general.matches(specific) and not (qualifiers and specific.matches(general))
    assert not parse_purl(f"pkg:{kind}/{path}@{encoded(version)}x").matches(specific)
