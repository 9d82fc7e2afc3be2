"""Version ordering checked against the tools that define it: the machine's own dpkg
(`dpkg --compare-versions`), apk-tools' test vectors, and packaging for PEP 440."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# Imported here, not in the tests: a first import inside a test counts against its deadline.
from kubeproof.vulndb.osv import MalformedRecord, affected_packages, range_verdict, validate_record
from kubeproof.vulndb.versions import (
    InvalidVersion,
    comparator,
    compare_apk,
    compare_dpkg,
    compare_go,
    compare_pypi,
    compare_semver,
)

APK_VECTORS = Path(__file__).parent / "data" / "apk-version-vectors.txt"
SIGN = {"<": -1, "=": 0, ">": 1}


def sign(value: int) -> int:
    return (value > 0) - (value < 0)


def apk_vectors() -> list[tuple[str, str, str]]:
    lines = [
        line.split()
        for line in APK_VECTORS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return [(a, op, b) for a, op, b in lines]


@pytest.mark.parametrize(("a", "op", "b"), apk_vectors())
def test_apk_matches_apk_tools_vectors(a: str, op: str, b: str) -> None:
    assert sign(compare_apk(a, b)) == SIGN[op]
    assert sign(compare_apk(b, a)) == -SIGN[op]


DPKG_VECTORS = [
    ("1.0", "<", "1.0-1"),
    ("1.0~rc1", "<", "1.0"),
    ("1.0~~", "<", "1.0~"),
    ("1:0.1", ">", "2.0"),
    ("2.36-9+deb12u4", "<", "2.36-9+deb12u10"),
    ("3.0.11-1~deb12u1", "<", "3.0.11-1~deb12u2"),
    ("3.0.11-1~deb12u2", "<", "3.0.11-1"),
    ("1.2.3", "=", "1.2.3"),
    ("0001.0", "=", "1.0"),
    ("1.0a", ">", "1.0"),
    ("1.0+", ">", "1.0a"),
    ("7.88.1-10+deb12u5", "<", "7.88.1-10+deb12u8"),
    ("2:1.0", ">", "1:9.9"),
    ("1.0-0ubuntu1", ">", "1.0-0"),
    ("9.2p1-2+deb12u3", "<", "9.2p1-2+deb12u4"),
]


@pytest.mark.parametrize(("a", "op", "b"), DPKG_VECTORS)
def test_dpkg_vectors(a: str, op: str, b: str) -> None:
    assert sign(compare_dpkg(a, b)) == SIGN[op]


DPKG_PIECES = st.text("0123456789.+~abzAZ", min_size=1, max_size=6)
DPKG_VERSIONS = st.builds(
    lambda epoch, upstream, revision: f"{epoch}{upstream}{revision}",
    st.sampled_from(["", "1:", "0:", "2:"]),
    st.builds(lambda digit, rest: digit + rest, st.sampled_from("0123456789"), DPKG_PIECES),
    st.one_of(st.just(""), DPKG_PIECES.map(lambda r: "-" + r.replace("-", ""))),
)


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg")
@settings(max_examples=60, deadline=None)
@given(DPKG_VERSIONS, DPKG_VERSIONS)
def test_dpkg_agrees_with_dpkg_itself(a: str, b: str) -> None:
    def dpkg(op: str) -> bool:
        return (
            subprocess.run(["dpkg", "--compare-versions", a, op, b], capture_output=True).returncode
            == 0
        )

    ours = sign(compare_dpkg(a, b))
    assert dpkg("lt") == (ours < 0) and dpkg("eq") == (ours == 0) and dpkg("gt") == (ours > 0)


@given(DPKG_VERSIONS, DPKG_VERSIONS, DPKG_VERSIONS)
def test_dpkg_is_a_total_order(a: str, b: str, c: str) -> None:
    assert sign(compare_dpkg(a, b)) == -sign(compare_dpkg(b, a))
    if compare_dpkg(a, b) <= 0 and compare_dpkg(b, c) <= 0:
        assert compare_dpkg(a, c) <= 0


APK_VERSIONS = st.from_regex(
    r"\A[0-9]{1,3}(\.[0-9]{1,3}){0,3}[a-z]?(_(alpha|beta|pre|rc|p|git)"
    r"[0-9]{0,3}){0,2}(-r[0-9]{1,2})?\Z"
)


@settings(max_examples=60)
@given(APK_VERSIONS, APK_VERSIONS, APK_VERSIONS)
def test_apk_is_a_total_order(a: str, b: str, c: str) -> None:
    assert sign(compare_apk(a, b)) == -sign(compare_apk(b, a))
    if compare_apk(a, b) <= 0 and compare_apk(b, c) <= 0:
        assert compare_apk(a, c) <= 0


@given(st.text(max_size=30), st.text(max_size=30))
def test_comparators_only_raise_invalid_version(a: str, b: str) -> None:
    for compare in (compare_dpkg, compare_apk, compare_pypi):
        with contextlib.suppress(InvalidVersion):
            compare(a, b)


def test_pypi_and_ecosystem_lookup() -> None:
    assert compare_pypi("1.0rc1", "1.0") < 0 < compare_pypi("1.0.post1", "1.0")
    assert compare_pypi("1.0", "1.0.0") == 0
    with pytest.raises(InvalidVersion):
        compare_pypi("not a version", "1")
    with pytest.raises(InvalidVersion):
        compare_dpkg("a1.0", "1")
    assert comparator("Debian:12") is compare_dpkg
    assert comparator("Alpine:v3.19") is compare_apk
    assert comparator("PyPI") is compare_pypi
    assert comparator("npm") is compare_semver
    assert comparator("Go") is compare_go
    assert comparator("RubyGems") is None  # an ecosystem kubeproof does not order


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "affected",
                    "package",
                    "ecosystem",
                    "name",
                    "ranges",
                    "events",
                    "versions",
                    "introduced",
                    "fixed",
                    "type",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@given(JSON)
def test_osv_validation_accepts_or_rejects_clearly(document: object) -> None:
    try:
        record = validate_record(document)
    except MalformedRecord:
        return
    affected_packages(record)


EVENT = st.sampled_from(["introduced", "fixed", "last_affected", "limit"])


@given(
    st.lists(st.tuples(EVENT, st.sampled_from(["0", "1.0", "1.2", "2.0", "x!", "*"])), max_size=5),
    st.sampled_from(["0.5", "1.0", "1.1", "2.0", "3"]),
)
def test_range_evaluation_never_raises(events: list[tuple[str, str]], version: str) -> None:
    verdict = range_verdict(
        version, {"type": "ECOSYSTEM", "events": [{k: v} for k, v in events]}, compare_pypi
    )
    assert verdict.fixed is None or verdict.affected


# -- SemVer 2.0.0 (npm) and Go -----------------------------------------------------------

# semver.org, item 11: each is lower than the next.
SEMVER_SPEC_ORDER = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "2.0.0",
    "2.1.0",
    "2.1.1",
]


def test_semver_spec_precedence() -> None:
    for lower_index, lower in enumerate(SEMVER_SPEC_ORDER):
        for higher in SEMVER_SPEC_ORDER[lower_index + 1 :]:
            assert compare_semver(lower, higher) < 0 < compare_semver(higher, lower)
        assert compare_semver(lower, lower) == 0


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1.0.0+20130313144700", "1.0.0", 0),  # build metadata is ignored (item 10)
        ("1.0.0-beta+exp.sha.5114f85", "1.0.0-beta", 0),
        ("1.9.0", "1.10.0", -1),  # numeric, not lexical
        ("1.0.0-2", "1.0.0-10", -1),  # numeric identifiers compare as numbers
        ("1.0.0-999", "1.0.0-a", -1),  # numeric before alphanumeric
        ("1.0.0-alpha.1", "1.0.0-alpha.1.0", -1),  # more fields wins when equal so far
        ("1.0.0-Z", "1.0.0-a", -1),  # ASCII order
        ("1.0.0-x-y-z.--", "1.0.0-x-y-z.-", 1),
    ],
)
def test_semver_rules(a: str, b: str, expected: int) -> None:
    assert sign(compare_semver(a, b)) == expected


@pytest.mark.parametrize(
    "invalid", ["1.0", "01.0.0", "1.0.0-01", "1.0.0-", "v1.0.0", "1.0.0+", "1.0.0-a..b", "é"]
)
def test_semver_rejects(invalid: str) -> None:
    with pytest.raises(InvalidVersion):
        compare_semver(invalid, "1.0.0")


def test_go_module_versions() -> None:
    # Pseudo-versions are prereleases: before the release they precede, after the last tag.
    pseudo = "v1.2.4-0.20210101000000-abcdef123456"
    assert compare_go("v1.2.3", pseudo) < 0 < compare_go("v1.2.4", pseudo)
    assert compare_go("v0.0.0-20200226121028-0de0cce0169b", "0.0.0-20211209124913-491a49abca63") < 0
    assert compare_go("v0.0.0-20211209124913-491a49abca63", "0.1.0") < 0
    assert compare_go("v2.0.0+incompatible", "2.0.0") == 0
    assert compare_go("v0.3.7", "0.3.8") < 0 and compare_go("v0.3.10", "0.3.8") > 0
    with pytest.raises(InvalidVersion):
        compare_go("v1.2", "1.2.0")


@settings(max_examples=300)
@given(
    st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20)),
    st.lists(st.one_of(st.integers(0, 30).map(str), st.sampled_from(["a", "b", "rc"])), max_size=3),
)
def test_semver_key_is_a_total_order(core: tuple[int, int, int], prerelease: list[str]) -> None:
    version = ".".join(map(str, core)) + ("-" + ".".join(prerelease) if prerelease else "")
    release = ".".join(map(str, core))
    assert compare_semver(version, release) == (-1 if prerelease else 0)
    assert compare_semver(version, version) == 0
