"""Frameworks are data: each YAML file here selects checks from the catalogue and groups
them (by SOC 2 criterion, CIS control or Pod Security control)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from kubeproof.checks import Check, catalogue
from kubeproof.checks.registry import load_yaml
from kubeproof.model import CheckSpec

DEFAULT_FRAMEWORK = "soc2"


class UnknownFramework(KeyError):
    pass


@dataclass(frozen=True)
class Group:
    id: str
    title: str
    description: str
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class Framework:
    id: str
    title: str
    description: str
    group_by: str  # criteria | cis | pss
    pss_level: str | None
    reference: str  # the published document the group ids come from
    groups: tuple[Group, ...]

    @property
    def checks(self) -> tuple[Check, ...]:
        """Each selected check once, in catalogue order."""
        chosen = {c.id for g in self.groups for c in g.checks}
        return tuple(c for c in catalogue() if c.id in chosen)

    def groups_of(self, spec: CheckSpec) -> list[str]:
        return [g.id for g in self.groups if any(c.spec is spec for c in g.checks)]


def _keys(spec: CheckSpec, group_by: str) -> tuple[str, ...]:
    if group_by == "criteria":
        return tuple(spec.criteria)
    if group_by == "cis":
        return spec.cis
    if group_by == "pss":
        return (spec.pss.control,) if spec.pss else ()
    raise ValueError(f"unknown group_by {group_by!r}")


def _selected(spec: CheckSpec, select: dict[str, Any]) -> bool:
    if levels := select.get("pss_levels"):
        return spec.pss is not None and spec.pss.level in levels
    if groups := select.get("check_groups"):
        return spec.group in groups
    return True


def _build(data: dict[str, Any]) -> Framework:
    group_by = data["group_by"]
    select = data.get("select") or {}
    groups = []
    for entry in data["groups"]:
        members = tuple(
            c
            for c in catalogue()
            if _selected(c.spec, select) and entry["id"] in _keys(c.spec, group_by)
        )
        groups.append(
            Group(
                str(entry["id"]),
                entry["title"],
                " ".join(str(entry.get("description", "")).split()),
                members,
            )
        )
    return Framework(
        id=data["id"],
        title=data["title"],
        description=" ".join(data.get("description", "").split()),
        group_by=group_by,
        pss_level=data.get("pss_level"),
        reference=data.get("reference", ""),
        groups=tuple(groups),
    )


@cache
def available() -> dict[str, Framework]:
    frameworks = {}
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            framework = _build(load_yaml(entry.read_text()))
            frameworks[framework.id] = framework
    return frameworks


def load(framework_id: str) -> Framework:
    try:
        return available()[framework_id]
    except KeyError:
        names = ", ".join(sorted(available()))
        raise UnknownFramework(f"unknown framework {framework_id!r} (available: {names})") from None
