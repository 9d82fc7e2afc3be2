"""How severe an advisory is: the CVSS base score computed from the record's vector (v3.0
and v3.1 here, by the formulas of FIRST's specification; v4.0 and v2 by the `cvss`
package, whose v4.0 code is FIRST's reference calculator), mapped to critical / high /
medium / low; without a vector that can be scored, the database's own rating (GitHub's
`severity`, a distribution's `urgency`). The rating says where it came from."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubeproof.inventory.objects import as_dict, as_list, as_str

CRITICAL, HIGH, MEDIUM, LOW, NONE, UNKNOWN = "critical", "high", "medium", "low", "none", "unknown"
LEVELS = (CRITICAL, HIGH, MEDIUM, LOW, NONE, UNKNOWN)
# OSV `severity[].type`, most precise first: a record that has both scores by v4.0.
_CVSS_TYPES = ("CVSS_V4", "CVSS_V3", "CVSS_V2")
# Words databases use for their own ratings (GitHub, Debian urgency, Ubuntu priority).
_WORDS = {
    "critical": CRITICAL,
    "high": HIGH,
    "important": HIGH,
    "moderate": MEDIUM,
    "medium": MEDIUM,
    "low": LOW,
    "negligible": LOW,
    "unimportant": LOW,
}


class InvalidVector(ValueError):
    """A CVSS vector that its version's specification does not allow."""


@dataclass(frozen=True)
class Rating:
    level: str  # one of LEVELS
    score: float | None = None  # the CVSS base score, when computed from a vector
    vector: str | None = None
    source: str | None = None  # "CVSS 3.1", "database_specific.severity", ...
    label: str | None = None  # the database's own word, as written (`MODERATE`)

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "score": self.score,
            "vector": self.vector,
            "source": self.source,
            "label": self.label,
        }

    def as_row(self) -> list[Any]:
        """As the database stores it (compact: one per advisory entry)."""
        return [self.level, self.score, self.vector, self.source, self.label]

    @classmethod
    def from_row(cls, row: Any) -> Rating:
        """From as_row's list; UNRATED for anything else."""
        if not isinstance(row, list) or len(row) != 5:
            return UNRATED
        try:
            return _from_row(*row)
        except TypeError:  # an unhashable part: not what kubeproof stored
            return UNRATED


@functools.lru_cache(maxsize=4096)
def _from_row(level: Any, score: Any, vector: Any, source: Any, label: Any) -> Rating:
    # Advisories share few distinct ratings: one object each.
    return Rating(
        level if level in LEVELS else UNKNOWN,
        float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
        vector if isinstance(vector, str) else None,
        source if isinstance(source, str) else None,
        label if isinstance(label, str) else None,
    )


UNRATED = Rating(UNKNOWN)


def level_of_score(score: float) -> str:
    """The qualitative rating scale of CVSS v3.x and v4.0 (the same thresholds)."""
    if score >= 9.0:
        return CRITICAL
    if score >= 7.0:
        return HIGH
    if score >= 4.0:
        return MEDIUM
    if score > 0.0:
        return LOW
    return NONE


# -- CVSS v3.0 / v3.1 base score (CVSS v3.1 specification, section 7) -------------------

_V3_WEIGHTS: dict[str, dict[str, float]] = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "PR": {"N": 0.85, "L": 0.62, "H": 0.27},
    "UI": {"N": 0.85, "R": 0.62},
    "S": {"U": 0.0, "C": 0.0},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
_V3_CHANGED_PR = {"N": 0.85, "L": 0.68, "H": 0.5}  # privileges weigh less when scope changes
# Temporal and environmental metrics may follow the base ones; the base score ignores them.
_V3_OTHER: dict[str, set[str]] = {
    "E": set("XUPFH"),
    "RL": set("XOTWU"),
    "RC": set("XURC"),
    "CR": set("XLMH"),
    "IR": set("XLMH"),
    "AR": set("XLMH"),
    "MAV": set("XNALP"),
    "MAC": set("XLH"),
    "MPR": set("XNLH"),
    "MUI": set("XNR"),
    "MS": set("XUC"),
    "MC": set("XNLH"),
    "MI": set("XNLH"),
    "MA": set("XNLH"),
}


def _roundup_v31(value: float) -> float:
    """v3.1's Roundup: the smallest one-decimal number >= value, done in integers so that
    floating-point noise (4.000000000000001) does not round up a whole tenth."""
    integer = round(value * 100_000)
    if integer % 10_000 == 0:
        return integer / 100_000.0
    return (math.floor(integer / 10_000) + 1) / 10.0


def _roundup_v30(value: float) -> float:
    return math.ceil(value * 10) / 10


def _v3_metrics(vector: str) -> tuple[str, dict[str, str]]:
    parts = vector.strip().split("/")
    prefix = parts[0]
    if prefix not in ("CVSS:3.0", "CVSS:3.1"):
        raise InvalidVector(f"{vector[:80]!r} does not start with CVSS:3.0/ or CVSS:3.1/")
    metrics: dict[str, str] = {}
    for part in parts[1:]:
        name, separator, value = part.partition(":")
        allowed = _V3_WEIGHTS.get(name) or _V3_OTHER.get(name)
        if not separator or allowed is None or value not in allowed:
            raise InvalidVector(f"{vector[:80]!r}: {part[:20]!r} is not a CVSS v3 metric")
        if name in metrics:
            raise InvalidVector(f"{vector[:80]!r}: {name} is given twice")
        metrics[name] = value
    missing = [name for name in _V3_WEIGHTS if name not in metrics]
    if missing:
        raise InvalidVector(f"{vector[:80]!r}: base metrics {', '.join(missing)} missing")
    return prefix[5:], metrics


def cvss3_base_score(vector: str) -> float:
    """The base score of a CVSS v3.0 or v3.1 vector; InvalidVector if it is not one."""
    version, metrics = _v3_metrics(vector)
    changed = metrics["S"] == "C"
    confidentiality, integrity, availability = (_V3_WEIGHTS[m][metrics[m]] for m in "CIA")
    impact_subscore = 1 - (1 - confidentiality) * (1 - integrity) * (1 - availability)
    if changed:
        impact = 7.52 * (impact_subscore - 0.029) - 3.25 * (impact_subscore - 0.02) ** 15
    else:
        impact = 6.42 * impact_subscore
    privileges = (_V3_CHANGED_PR if changed else _V3_WEIGHTS["PR"])[metrics["PR"]]
    exploitability = (
        8.22
        * _V3_WEIGHTS["AV"][metrics["AV"]]
        * _V3_WEIGHTS["AC"][metrics["AC"]]
        * privileges
        * _V3_WEIGHTS["UI"][metrics["UI"]]
    )
    if impact <= 0:
        return 0.0
    roundup = _roundup_v31 if version == "3.1" else _roundup_v30
    total = impact + exploitability
    return roundup(min(1.08 * total if changed else total, 10.0))


# -- CVSS v4.0 and v2 through the `cvss` package ------------------------------------------


def _library_score(vector: str, kind: str) -> float:
    import cvss  # imported on use: only records with such vectors need it

    try:
        if kind == "CVSS_V4":
            return float(cvss.CVSS4(vector).base_score)
        return float(cvss.CVSS2(vector).scores()[0])
    except (cvss.CVSSError, ValueError, KeyError, IndexError, TypeError) as error:
        raise InvalidVector(f"{vector[:80]!r}: {error}") from None


def _v2_level(score: float) -> str:
    """NVD's ratings for CVSS v2 (v2 itself defines none): no `critical`."""
    return HIGH if score >= 7.0 else MEDIUM if score >= 4.0 else LOW if score > 0 else NONE


@functools.lru_cache(maxsize=4096)
def rate_vector(kind: str, vector: str) -> Rating:
    """The rating of one OSV severity entry (`CVSS_V3`, `CVSS_V4`, `CVSS_V2`);
    InvalidVector if the vector cannot be scored. Records share few distinct vectors."""
    text = vector.strip()
    if kind == "CVSS_V3" or text.startswith("CVSS:3."):
        score = cvss3_base_score(text)
        return Rating(level_of_score(score), score, text, f"CVSS {text[5:8]}")
    if kind == "CVSS_V4":
        if not text.startswith("CVSS:4.0/"):
            raise InvalidVector(f"{text[:80]!r} does not start with CVSS:4.0/")
        score = _library_score(text, kind)
        return Rating(level_of_score(score), score, text, "CVSS 4.0")
    if kind == "CVSS_V2":
        score = _library_score(text, kind)
        return Rating(_v2_level(score), score, text, "CVSS 2.0")
    raise InvalidVector(f"severity type {kind[:20]!r} is not a CVSS version")


def _word_rating(value: Any, source: str) -> Rating | None:
    text = as_str(value)
    if not text or not text.strip():
        return None
    level = _WORDS.get(text.strip().lower(), UNKNOWN)
    return Rating(level, source=source, label=text.strip()[:40])


def rate(record: Mapping[str, Any], entry: Mapping[str, Any] | None = None) -> Rating:
    """An advisory's rating for one `affected[]` entry: an entry's own CVSS severity (OSV
    allows one per entry) before the record's, the most recent CVSS version first, then
    the database-specific rating, then the entry's ecosystem-specific one. A vector that
    cannot be scored is passed over, never guessed."""
    entries = [
        as_dict(s)
        for s in [*as_list(as_dict(entry).get("severity")), *as_list(record.get("severity"))]
    ]
    for kind in _CVSS_TYPES:
        for severity in entries:
            vector = as_str(severity.get("score"))
            if as_str(severity.get("type")) == kind and vector:
                try:
                    return rate_vector(kind, vector)
                except InvalidVector:
                    continue
    specific = as_dict(as_dict(entry).get("ecosystem_specific"))
    database = as_dict(as_dict(entry).get("database_specific"))
    for value, source in (
        (as_dict(record.get("database_specific")).get("severity"), "database_specific.severity"),
        (database.get("severity"), "database_specific.severity"),
        (specific.get("severity"), "ecosystem_specific.severity"),
        (specific.get("urgency"), "ecosystem_specific.urgency"),
        (database.get("urgency"), "database_specific.urgency"),
    ):
        rating = _word_rating(value, source)
        if rating is not None:
            return rating
    return UNRATED
