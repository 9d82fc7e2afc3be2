"""rpm, Maven and crates.io version ordering, checked against the tools that define them:
rpm's and Maven's own test vectors, and the real `rpm` (its Lua `rpm.vercmp`) and Maven's
real ComparableVersion class (maven-artifact, from Debian's maven package) on generated
versions."""

from __future__ import annotations

import contextlib
import functools
import itertools
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeproof.vulndb.versions import (
    InvalidVersion,
    comparator,
    compare_maven,
    compare_rpm,
    parse_rpm_evr,
    rpmvercmp,
    version_key,
)

DATA = Path(__file__).parent / "data"
MAVEN_ARTIFACT = Path("/usr/share/maven/lib/maven-artifact-3.x.jar")


def sign(value: int) -> int:
    return (value > 0) - (value < 0)


def rpm_vectors() -> list[tuple[str, str, int]]:
    lines = (DATA / "rpmvercmp-vectors.txt").read_text().splitlines()
    return [
        (a, b, int(expected))
        for a, b, expected in (line.split() for line in lines if line and line[0] != "#")
    ]


@pytest.mark.parametrize(("a", "b", "expected"), rpm_vectors())
def test_rpmvercmp_matches_rpm_test_vectors(a: str, b: str, expected: int) -> None:
    assert sign(rpmvercmp(a, b)) == expected


def test_rpm_epoch_and_release() -> None:
    assert parse_rpm_evr("1:3.0.7-27.el9") == (1, "3.0.7", "27.el9")
    assert parse_rpm_evr("3.0.7") == (0, "3.0.7", "")
    assert compare_rpm("1:1.0-1", "2.0-1") > 0  # the epoch decides first
    assert compare_rpm("0:1.9.5p2-10.el9_6.1", "1.9.5p2-10.el9") > 0
    assert compare_rpm("3.0.7-27.el9", "3.0.7-27.el9_2.1") < 0
    assert compare_rpm("1.0", "1.0-5") < 0  # as rpm.vercmp: no release sorts first
    with pytest.raises(InvalidVersion):
        compare_rpm("", "1.0")
    with pytest.raises(InvalidVersion):
        compare_rpm("1:-1", "1.0")


def rpm_tool() -> str:
    rpm = shutil.which("rpm")
    if rpm is None:
        pytest.fail("rpm is not installed: run scripts/image-tools.sh (make test-tools)")
    return rpm


def rpm_vercmp_all(pairs: list[tuple[str, str]]) -> list[int]:
    """rpm.vercmp of each pair, by the real rpm in one process."""
    body = " ".join(f'print(rpm.vercmp([[{a}]], [[{b}]]) .. "")' for a, b in pairs)
    output = subprocess.run(
        [rpm_tool(), "--eval", f"%{{lua: {body}}}"], capture_output=True, text=True, check=True
    ).stdout
    # Lua's print inside --eval writes without separators we can rely on: -1, 0, 1 joined.
    values, text = [], output.strip()
    while text:
        width = 2 if text.startswith("-") else 1
        values.append(int(text[:width]))
        text = text[width:]
    return values


_SEGMENT = st.text(alphabet="0123456789abzAZ.~^_+", min_size=1, max_size=8).filter(
    lambda s: s[0].isalnum()
)
_EVR = st.builds(
    lambda epoch, version, release: f"{epoch}{version}{release}",
    st.sampled_from(["", "0:", "1:", "12:"]),
    _SEGMENT,
    st.sampled_from(["", "-1", "-1.el9", "-2.el9_1", "-10.module+el8.6.0+123"]),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_EVR, _EVR), min_size=20, max_size=40))
def test_rpm_order_agrees_with_rpm_itself(pairs: list[tuple[str, str]]) -> None:
    expected = rpm_vercmp_all(pairs)
    assert [sign(compare_rpm(a, b)) for a, b in pairs] == expected


def maven_vectors() -> list[tuple[str, list[str]]]:
    lines = (DATA / "maven-version-vectors.txt").read_text().splitlines()
    return [(line.split()[0], line.split()[1:]) for line in lines if line and line[0] != "#"]


@pytest.mark.parametrize(("kind", "versions"), maven_vectors())
def test_maven_matches_maven_test_vectors(kind: str, versions: list[str]) -> None:
    if kind == "=":
        assert compare_maven(versions[0], versions[1]) == 0
        assert compare_maven(versions[1], versions[0]) == 0
        return
    for low_index, low in enumerate(versions):
        for high in versions[low_index + 1 :]:
            assert compare_maven(low, high) < 0, (low, high)
            assert compare_maven(high, low) > 0, (high, low)


def maven_compare_all(versions: list[str]) -> list[int]:
    """The real ComparableVersion's verdict on each neighbouring pair (its main prints
    `   A < B` lines)."""
    if not MAVEN_ARTIFACT.exists() or shutil.which("java") is None:
        pytest.fail("maven-artifact or java missing: run scripts/image-tools.sh (make test-tools)")
    output = subprocess.run(
        [
            "java",
            "-cp",
            str(MAVEN_ARTIFACT),
            "org.apache.maven.artifact.versioning.ComparableVersion",
            *versions,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    verdicts = [line.split()[1] for line in output.splitlines() if line.startswith("   ")]
    return [{"<": -1, "==": 0, ">": 1}[v] for v in verdicts]


_MAVEN_TOKEN = st.sampled_from(
    [
        *("0", "1", "2", "9", "10", ".", "-", "a", "b", "m", "rc", "cr", "sp", "ga", "final"),
        *("SNAPSHOT", "alpha", "beta", "x", "RELEASE"),
    ]
)
_MAVEN_VERSION = st.lists(_MAVEN_TOKEN, min_size=1, max_size=7).map("".join)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_MAVEN_VERSION, min_size=20, max_size=40))
def test_maven_order_agrees_with_maven_itself(versions: list[str]) -> None:
    expected = maven_compare_all(versions)
    ours = [sign(compare_maven(a, b)) for a, b in itertools.pairwise(versions)]
    assert ours == expected


@given(st.text(max_size=30), st.text(max_size=30))
def test_rpm_and_maven_only_raise_invalid_version(a: str, b: str) -> None:
    for compare in (compare_rpm, compare_maven):
        with contextlib.suppress(InvalidVersion):
            assert sign(compare(a, b)) == -sign(compare(b, a))


@given(st.lists(_EVR, min_size=3, max_size=12))
def test_rpm_key_sorts_consistently(versions: list[str]) -> None:
    key = version_key("Rocky Linux:9")
    assert key is not None
    ordered = sorted(versions, key=key)
    assert all(compare_rpm(a, b) <= 0 for a, b in itertools.pairwise(ordered))


def test_ecosystem_dispatch() -> None:
    for ecosystem in ("Red Hat:9", "Rocky Linux:9", "AlmaLinux:8"):
        assert comparator(ecosystem) is compare_rpm
    assert comparator("Maven") is compare_maven
    crates = comparator("crates.io")
    assert crates is not None and crates("1.0.0-alpha", "1.0.0") < 0
    assert comparator("Ubuntu:22.04") is not None
    maven_key = version_key("Maven")
    assert maven_key is not None
    assert sorted(["1.0", "1.0-SNAPSHOT", "1.0-alpha-1"], key=maven_key) == [
        "1.0-alpha-1",
        "1.0-SNAPSHOT",
        "1.0",
    ]
    assert functools.cmp_to_key(compare_maven)("2.0") > functools.cmp_to_key(compare_maven)("1.9")
