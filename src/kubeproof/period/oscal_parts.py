"""What every part of the OSCAL rendering shares: derived UUIDs, props, observations."""

from __future__ import annotations

import uuid
from typing import Any

NAMESPACE = "urn:kubeproof:oscal"
_UUID_ROOT = uuid.uuid5(uuid.NAMESPACE_URL, NAMESPACE)


def uuid_of(*parts: object) -> str:
    """A UUID (v5) derived from what it stands for: two renderings of the same evidence
    agree."""
    return str(uuid.uuid5(_UUID_ROOT, "\x1f".join(str(p) for p in parts)))


def prop(name: str, value: object) -> dict[str, str]:
    return {"name": name, "ns": NAMESPACE, "value": str(value)}


def observation(
    observation_uuid: str,
    title: str,
    description: str,
    props: list[dict[str, str]],
    *,
    finding: bool,
    collected: str | None,
    evidence: str,
) -> dict[str, Any]:
    """An observation made by testing, with `evidence` saying what in the evidence store
    (covered by its ledger) it rests on."""
    return {
        "uuid": observation_uuid,
        "title": title,
        "description": description,
        "props": props,
        "methods": ["TEST"],
        "types": ["finding"] if finding else ["control-objective"],
        "collected": collected,
        "relevant-evidence": [
            {
                "href": "#evidence-ledger",
                "description": f"{evidence} in the kubeproof evidence store, covered by its "
                "hash-chained ledger (kubeproof evidence verify).",
            }
        ],
    }
