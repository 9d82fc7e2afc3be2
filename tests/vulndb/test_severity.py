"""Severity: CVSS v3.0/v3.1 base scores by the FIRST specification's formulas, checked
against the specification's worked examples and, over every base vector, against the
`cvss` package; v4.0 through that package; the database's own rating when no vector can
be scored."""

from __future__ import annotations

import itertools

import cvss
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeproof.vulndb.severity import (
    CRITICAL,
    HIGH,
    LOW,
    MEDIUM,
    NONE,
    UNKNOWN,
    InvalidVector,
    Rating,
    cvss3_base_score,
    rate,
    rate_vector,
)

# CVSS v3.1 Specification Document / Examples document: (vector body, base score).
SPEC_EXAMPLES = [
    ("AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),  # CVE-2013-1937 phpMyAdmin XSS
    ("AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", 6.4),  # CVE-2013-0375 MySQL
    ("AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N", 3.1),  # CVE-2014-3566 POODLE
    ("AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9),  # CVE-2012-1516 VMware
    ("AV:L/AC:L/PR:H/UI:N/S:U/C:L/I:L/A:L", 4.2),  # CVE-2009-0783 Tomcat
    ("AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 8.8),  # CVE-2012-0384 Cisco IOS
    ("AV:L/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H", 7.8),  # CVE-2015-1098 Apple iWork
    ("AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 7.5),  # CVE-2014-0160 Heartbleed
    ("AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),  # CVE-2014-6271 Shellshock
    ("AV:N/AC:H/PR:N/UI:N/S:C/C:N/I:H/A:N", 6.8),  # CVE-2008-1447 DNS
    ("AV:P/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 6.8),  # CVE-2014-2005 Sophos
    ("AV:N/AC:L/PR:N/UI:N/S:C/C:L/I:N/A:N", 5.8),  # CVE-2010-0467 Joomla
    ("AV:N/AC:L/PR:N/UI:N/S:C/C:N/I:L/A:N", 5.8),  # CVE-2012-1342 Cisco ACL
    ("AV:A/AC:L/PR:N/UI:N/S:C/C:N/I:H/A:H", 9.3),  # CVE-2013-6014 Juniper
]


@pytest.mark.parametrize(("body", "score"), SPEC_EXAMPLES)
def test_specification_examples(body: str, score: float) -> None:
    for version in ("3.0", "3.1"):
        assert cvss3_base_score(f"CVSS:{version}/{body}") == score


def test_every_base_vector_agrees_with_the_cvss_package() -> None:
    values = {
        "AV": "NALP",
        "AC": "LH",
        "PR": "NLH",
        "UI": "NR",
        "S": "UC",
        "C": "HLN",
        "I": "HLN",
        "A": "HLN",
    }
    checked = 0
    for version in ("3.0", "3.1"):
        for combination in itertools.product(*values.values()):
            body = "/".join(f"{m}:{v}" for m, v in zip(values, combination, strict=True))
            vector = f"CVSS:{version}/{body}"
            assert cvss3_base_score(vector) == cvss.CVSS3(vector).scores()[0], vector
            checked += 1
    assert checked == 2 * 2592


def test_v30_and_v31_round_differently() -> None:
    # v3.1's Roundup works in integers: 0.000001 of floating-point noise above a tenth
    # does not add a tenth; v3.0's plain ceiling does.
    from kubeproof.vulndb.severity import _roundup_v30, _roundup_v31

    assert _roundup_v31(4.000000000000001) == 4.0
    assert _roundup_v30(4.000000000000001) == 4.1
    assert _roundup_v31(4.02) == 4.1


def test_temporal_metrics_do_not_change_the_base_score() -> None:
    base = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
    assert cvss3_base_score(base + "/E:U/RL:O/RC:R/CR:H/MAV:L") == 9.8


@pytest.mark.parametrize(
    "vector",
    [
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H",  # A missing
        "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # not a value of AV
        "CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # twice
        "CVSS:3.2/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/ZZ:1",
    ],
)
def test_malformed_v3_vectors(vector: str) -> None:
    with pytest.raises(InvalidVector):
        cvss3_base_score(vector)


@given(st.text(max_size=80))
def test_any_text_is_a_score_or_invalid_vector(text: str) -> None:
    for kind in ("CVSS_V3", "CVSS_V4", "CVSS_V2"):
        try:
            rating = rate_vector(kind, text)
        except InvalidVector:
            continue
        assert rating.score is not None and 0.0 <= rating.score <= 10.0


def test_v4_scores_with_the_reference_calculator() -> None:
    vector = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
    assert rate_vector("CVSS_V4", vector) == Rating(CRITICAL, 9.3, vector, "CVSS 4.0")
    nothing = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N"
    assert rate_vector("CVSS_V4", nothing).level == NONE
    with pytest.raises(InvalidVector):
        rate_vector("CVSS_V4", "CVSS:4.0/AV:N")


def test_rating_precedence_and_fallbacks() -> None:
    v31 = "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:H/I:H/A:N"
    v40 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
    ghsa = {
        "severity": [{"type": "CVSS_V3", "score": v31}],
        "database_specific": {"severity": "MODERATE"},
    }
    assert rate(ghsa) == Rating(MEDIUM, 5.6, v31, "CVSS 3.1")
    both = {
        **ghsa,
        "severity": [{"type": "CVSS_V3", "score": v31}, {"type": "CVSS_V4", "score": v40}],
    }
    assert rate(both).source == "CVSS 4.0" and rate(both).level == CRITICAL
    # A vector that cannot be scored is passed over: the database's word decides.
    broken = {**ghsa, "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N"}]}
    assert rate(broken) == Rating(MEDIUM, source="database_specific.severity", label="MODERATE")
    debian_entry = {"ecosystem_specific": {"urgency": "unimportant"}}
    assert rate({}, debian_entry) == Rating(
        LOW, source="ecosystem_specific.urgency", label="unimportant"
    )
    assert rate({}, {"ecosystem_specific": {"urgency": "not yet assigned"}}).level == UNKNOWN
    assert rate({}, {}) == Rating(UNKNOWN)
    # An entry's own severity comes before the record's.
    entry = {
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]
    }
    assert rate(ghsa, entry).level == CRITICAL
    assert rate({"database_specific": {"severity": "HIGH"}}).level == HIGH


def test_rating_rows_round_trip_and_reject_garbage() -> None:
    rating = Rating(HIGH, 7.5, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", "CVSS 3.1")
    assert Rating.from_row(rating.as_row()) == rating
    assert Rating.from_row(["bogus", "7", 3, None, None]).level == UNKNOWN
    assert Rating.from_row({"level": "high"}) == Rating(UNKNOWN)
