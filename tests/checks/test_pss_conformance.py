"""Conformance with the fixtures Kubernetes itself uses to test Pod Security admission.

Every pod under shared/conformance/pod-security-admission/testdata (beside this
repository), at both levels and every policy version v1.0-v1.37: a pass/ pod gets no
failing result, and a fail/ pod gets a failing result from the check its file is named
after (the name without trailing digits is the upstream check ID, lower-cased). The
verdict must not change when the pod is wrapped in a pod-template workload.

Each fixture is judged as a bare Pod, a Deployment and a CronJob, plus one of the other
pod-template kinds in turn, so every kind meets every check at many versions while the
run stays fast. KUBEPROOF_PSS_ALL_KINDS=1 wraps every fixture in every kind.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeproof.checks import Check, catalogue
from kubeproof.engine import Context, evaluate
from kubeproof.inventory import Inventory, K8sObject
from kubeproof.model import Location, Result, Status

# The folder `shared/` beside the repository root (tests/paths.py SHARED).
TESTDATA = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "conformance"
    / "pod-security-admission"
    / "testdata"
)
LEVELS = ("baseline", "restricted")
MINORS = range(38)  # v1.0 .. v1.37
VERDICTS = ("pass", "fail")
# Every kind that carries a pod template, as Kubernetes' own fixture test wraps them.
KINDS = (
    "Pod",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicationController",
    "PodTemplate",
)
ALWAYS_KINDS = ("Pod", "Deployment", "CronJob")
ROTATING_KINDS = tuple(k for k in KINDS if k not in ALWAYS_KINDS)
ALL_KINDS = os.environ.get("KUBEPROOF_PSS_ALL_KINDS") == "1"
UPSTREAM_CONTROLS = frozenset(
    {
        "hostNamespaces",
        "privileged",
        "capabilities_baseline",
        "hostPathVolumes",
        "hostPorts",
        "appArmorProfile",
        "seLinuxOptions",
        "procMount",
        "seccompProfile_baseline",
        "sysctls",
        "windowsHostProcess",
        "hostProbesAndHostLifecycle",
        "restrictedVolumes",
        "runAsNonRoot",
        "allowPrivilegeEscalation",
        "seccompProfile_restricted",
        "capabilities_restricted",
        "runAsUser",
        "procMount_restricted",
    }
)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _cases() -> list[Any]:
    paths = [
        (level, minor, verdict, path)
        for level in LEVELS
        for minor in MINORS
        for verdict in VERDICTS
        for path in sorted((TESTDATA / level / f"v1.{minor}" / verdict).glob("*.yaml"))
    ]
    cases = [
        pytest.param(
            level,
            minor,
            verdict,
            path,
            _kinds(index),
            id=f"{level}/v1.{minor}/{verdict}/{path.name}",
        )
        for index, (level, minor, verdict, path) in enumerate(paths)
    ]
    # Without fixtures there must be a failing case, never an empty (skipped) run.
    return cases or [pytest.param(None, None, None, None, KINDS, id="fixtures-missing")]


def _kinds(index: int) -> tuple[str, ...]:
    if ALL_KINDS:
        return KINDS
    return (*ALWAYS_KINDS, ROTATING_KINDS[index % len(ROTATING_KINDS)])


@cache
def _checks(level: str) -> tuple[Check, ...]:
    levels = ("baseline",) if level == "baseline" else ("baseline", "restricted")
    return tuple(
        c
        for c in catalogue()
        if c.spec.group == "pss" and c.spec.pss is not None and c.spec.pss.level in levels
    )


@cache
def _parse(text: str) -> dict[str, Any]:
    # Most fixtures repeat across versions unchanged: parse each distinct text once.
    pod = yaml.load(text, Loader=_LOADER)  # the C loader is the safe one when available
    assert isinstance(pod, dict) and pod.get("kind") == "Pod"
    return pod


def _wrapped(pod: dict[str, Any], kinds: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """The pod as each of `kinds`: itself, or the template of a pod-template kind."""
    name = pod["metadata"]["name"]
    template = {"metadata": pod["metadata"], "spec": pod["spec"]}
    selector = {"matchLabels": {"app": name}}
    for kind in kinds:
        if kind == "Pod":
            yield pod
            continue
        api_version = {
            "Job": "batch/v1",
            "CronJob": "batch/v1",
            "ReplicationController": "v1",
            "PodTemplate": "v1",
        }.get(kind, "apps/v1")
        obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}
        if kind == "CronJob":
            obj["spec"] = {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template}}}
        elif kind == "PodTemplate":
            obj["template"] = template
        elif kind in ("Job", "ReplicationController"):
            obj["spec"] = {"template": template}
        else:
            obj["spec"] = {"selector": selector, "template": template}
        yield obj


def _expected_control(path: Path) -> str:
    return re.sub(r"\d+$", "", path.stem)


def _problems(verdict: str, path: Path, kinds: tuple[str, ...], results: list[Result]) -> list[str]:
    by_kind: dict[str, list[Result]] = defaultdict(list)
    for result in results:
        by_kind[result.subject.kind].append(result)
    problems = []
    for kind in kinds:
        judged = by_kind[kind]
        if verdict == "pass":
            wrong = [
                f"{r.check.id}={r.status.value}: {r.message}"
                for r in judged
                if r.status is not Status.PASS
            ]
            if not judged:
                problems.append(f"{kind}: no result at all")
            elif wrong:
                problems.append(f"{kind}: expected every check to pass, got {wrong}")
        else:
            control = _expected_control(path)
            failed = {
                r.check.pss.control.lower(): r.message
                for r in judged
                if r.status is Status.FAIL and r.check.pss is not None
            }
            if control not in failed:
                others = {r.check.id: r.status.value for r in judged if r.status is not Status.PASS}
                problems.append(f"{kind}: expected {control} to fail; got {others or 'all pass'}")
    return problems


@pytest.mark.parametrize(("level", "minor", "verdict", "path", "kinds"), _cases())
def test_fixture(
    level: str | None,
    minor: int | None,
    verdict: str | None,
    path: Path | None,
    kinds: tuple[str, ...],
) -> None:
    assert level is not None and minor is not None and verdict is not None
    assert path is not None, f"no conformance fixtures under {TESTDATA}"
    pod = _parse(path.read_text())
    location = Location(str(path))
    inventory = Inventory(K8sObject.from_raw(obj, location) for obj in _wrapped(pod, kinds))
    context = Context(inventory, pss_version=(1, minor), pss_level=level)
    results = evaluate(inventory, _checks(level), context)
    problems = _problems(verdict, path, kinds, results)
    assert not problems, "\n".join(problems)


def test_fixture_set_is_complete() -> None:
    """The fixture folder must be there, whole: both levels, every version, both verdicts."""
    assert TESTDATA.is_dir(), f"conformance fixtures missing: {TESTDATA}"
    for level in LEVELS:
        for minor in MINORS:
            for verdict in VERDICTS:
                folder = TESTDATA / level / f"v1.{minor}" / verdict
                assert any(folder.glob("*.yaml")), f"no fixtures in {folder}"
    assert len(list(TESTDATA.rglob("*.yaml"))) > 4000


def test_every_fixture_control_is_a_check() -> None:
    controls = {c.spec.pss.control for c in catalogue() if c.spec.pss is not None}
    assert controls == UPSTREAM_CONTROLS
    named = {_expected_control(p) for p in TESTDATA.rglob("fail/*.yaml")}
    assert named == {c.lower() for c in UPSTREAM_CONTROLS}


def test_check_ids_follow_upstream_ids() -> None:
    for check in catalogue():
        if check.spec.group != "pss":
            continue
        assert check.spec.pss is not None
        kebab = re.sub(r"(?<=[a-z])(?=[A-Z])", "-", check.spec.pss.control)
        assert check.id == "pss." + kebab.replace("_", "-").lower()
        assert check.spec.scope == "workload"
