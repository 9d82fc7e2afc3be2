"""The example application parses cleanly, and examples/README.md lists exactly what fails.

Every failing result on the examples must appear in a table row of the README (its
subject and its check id in backticks), and every pair the README lists must fail. A
new check that fires on the examples therefore fails this test until the README says
whether the finding is a deliberate mistake, a consequence of one, or accepted.
"""

from __future__ import annotations

import re
from itertools import product

import pytest

from kubeproof.checks import catalogue
from kubeproof.engine import Context, evaluate
from kubeproof.inventory import Inventory
from kubeproof.model import Result, Status
from kubeproof.sources.files import Loaded, load_paths
from paths import ROOT

EXAMPLES = ROOT / "examples"
CHECK_ID = re.compile(r"^[a-z]+\.[a-z0-9-]+$")
SUBJECT = re.compile(r"^[A-Z][A-Za-z]+/[a-z0-9.-]+(?:/[a-z0-9.-]+)?$")


def documented_failures() -> set[tuple[str, str]]:
    """(check id, subject) for each table row of the README that names both."""
    pairs: set[tuple[str, str]] = set()
    for line in (EXAMPLES / "README.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            continue
        tokens = re.findall(r"`([^`]+)`", line)
        checks = [t for t in tokens if CHECK_ID.match(t)]
        subjects = [t for t in tokens if SUBJECT.match(t)]
        pairs.update(product(checks, subjects))
    return pairs


@pytest.fixture(scope="module")
def loaded() -> Loaded:
    return load_paths([str(EXAMPLES)])


@pytest.fixture(scope="module")
def results(loaded: Loaded) -> list[Result]:
    inventory = Inventory(loaded.objects)
    return evaluate(inventory, catalogue(), Context(inventory))


def test_every_example_file_parses(loaded: Loaded) -> None:
    assert loaded.errors == []
    assert loaded.files == len(list(EXAMPLES.rglob("*.yaml")))
    assert len(loaded.objects) >= 25


def test_readme_lists_exactly_the_failures(results: list[Result]) -> None:
    failing = {
        (r.check.id, str(r.subject.with_container(None)))
        for r in results
        if r.status is Status.FAIL
    }
    documented = documented_failures()
    assert documented, "no (check, subject) rows found in examples/README.md"
    assert sorted(failing - documented) == [], "failing but not in examples/README.md"
    assert sorted(documented - failing) == [], "in examples/README.md but not failing"


def test_nothing_is_left_unjudged(results: list[Result]) -> None:
    # Files are the whole input: every check can reach a verdict on them.
    assert [str(r.subject) for r in results if r.status is Status.NOT_EVALUATED] == []


def test_no_result_carries_the_example_key(loaded: Loaded, results: list[Result]) -> None:
    api = next(o for o in loaded.objects if o.kind == "Deployment" and o.name == "api")
    env = api.raw["spec"]["template"]["spec"]["containers"][0]["env"]
    key = next(e["value"] for e in env if e["name"] == "AWS_ACCESS_KEY_ID")
    assert key.startswith("AKIA")
    assert not any(key in f"{r.message} {r.reason} {r.extra}" for r in results)
