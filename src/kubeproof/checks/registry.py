"""The check catalogue: small pure functions, joined to what they mean (the YAML beside them).

Each module in this package `X.py` registers its functions with `@check(id)`; `X.yaml`
describes each id (title, severity, criteria with rationales, references). Loading
fails loudly when a function has no description or a description has no function, so
the catalogue and the code cannot drift apart.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from kubeproof.model import CheckSpec, PssRef, Severity
from kubeproof.sources.documents import fast_yaml

# The check modules, in catalogue order; each has a YAML file of the same name.
CHECK_MODULES = (
    "pss",
    "admission",
    "workload",
    "secrets",
    "exposure",
    "network",
    "rbac",
    "availability",
    "controlplane",
    "drift",
)

SCOPES = frozenset({"container", "workload", "object", "namespace", "cluster"})
CRITERIA = frozenset(
    {
        "CC6.1",
        "CC6.2",
        "CC6.3",
        "CC6.6",
        "CC6.7",
        "CC6.8",
        "CC7.1",
        "CC7.2",
        "CC8.1",
        "A1.2",
        "C1.1",
    }
)


# Not frozen: checks make tens of thousands per scan, and a frozen dataclass's __init__
# costs three times more. Nothing changes a Violation once made.
@dataclass(slots=True)
class Violation:
    """One way a subject breaks a check. `path` is relative to what the check was given:
    the container, the pod spec (workload scope) or the object root."""

    message: str
    path: str | None = None


class NotApplicable(Exception):
    """Raised by a check when the subject is outside what it judges (no result at all)."""


class NotEvaluated(Exception):
    """Raised by a check that could not reach a verdict; the message is the reason."""


CheckFunction = Callable[..., Iterable[Violation] | None]


@dataclass(frozen=True, slots=True)
class Check:
    spec: CheckSpec
    function: CheckFunction

    @property
    def id(self) -> str:
        return self.spec.id


_functions: dict[str, CheckFunction] = {}


def check(check_id: str) -> Callable[[CheckFunction], CheckFunction]:
    """Register the function that decides `check_id`."""

    def register(function: CheckFunction) -> CheckFunction:
        if check_id in _functions:
            raise ValueError(f"check {check_id} is registered twice")
        _functions[check_id] = function
        return function

    return register


class CatalogueError(Exception):
    pass


def load_yaml(text: str) -> Any:
    """Our own data files, with the manifests' fast parser (already loaded at every start,
    unlike PyYAML), else libyaml's C loader."""
    if fast_yaml is not None:
        return fast_yaml.safe_load(text, "yaml1.1")
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def spec_from_data(
    entry: dict[str, Any],
    group: str,
    *,
    source: str | None = None,
    scopes: frozenset[str] = SCOPES,
) -> CheckSpec:
    """A check's description, validated: catalogue checks, and anything else judged by
    criteria (audit detectors), read the same way. `source` names the file in errors."""
    check_id = entry.get("id", "?")
    where = f"{source or f'{group}.yaml'}: check {check_id}"
    try:
        references = entry.get("references") or {}
        pss = references.get("pss")
        criteria = {str(k): str(v).strip() for k, v in (entry.get("criteria") or {}).items()}
        spec = CheckSpec(
            id=entry["id"],
            title=entry["title"].strip(),
            description=" ".join(entry["description"].split()),
            severity=Severity(entry["severity"]),
            remediation=" ".join(entry["remediation"].split()),
            criteria=criteria,
            scope=entry["scope"],
            kinds=tuple(entry.get("kinds") or ()),
            needs=tuple(entry.get("needs") or ()),
            cis=tuple(str(c) for c in references.get("cis") or ()),
            pss=PssRef(pss["control"], pss["level"]) if pss else None,
            nsa=tuple(references.get("nsa") or ()),
            group=group,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CatalogueError(f"{where}: {error!r}") from error
    if spec.scope not in scopes:
        raise CatalogueError(f"{where}: unknown scope {spec.scope}")
    if spec.scope == "object" and not spec.kinds:
        raise CatalogueError(f"{where}: object scope needs kinds")
    if not spec.criteria or not set(spec.criteria) <= CRITERIA:
        raise CatalogueError(f"{where}: criteria {sorted(spec.criteria)}")
    if any(not rationale for rationale in spec.criteria.values()):
        raise CatalogueError(f"{where}: every criterion needs a rationale")
    return spec


@cache
def catalogue() -> tuple[Check, ...]:
    """Every check, in catalogue order."""
    checks: list[Check] = []
    for module in CHECK_MODULES:
        importlib.import_module(f"kubeproof.checks.{module}")
        text = resources.files("kubeproof.checks").joinpath(f"{module}.yaml").read_text()
        for entry in load_yaml(text)["checks"]:
            spec = spec_from_data(entry, module)
            function = _functions.get(spec.id)
            if function is None:
                raise CatalogueError(f"{module}.yaml: check {spec.id} has no function")
            checks.append(Check(spec, function))
    described = {c.id for c in checks}
    if missing := sorted(set(_functions) - described):
        raise CatalogueError(f"checks without a catalogue entry: {', '.join(missing)}")
    if len(described) != len(checks):
        raise CatalogueError("a check id is described twice")
    return tuple(checks)


def find(check_id: str) -> Check | None:
    return next((c for c in catalogue() if c.id == check_id), None)
