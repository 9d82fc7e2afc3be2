"""Generated docs are committed; they must match the catalogue they are generated from."""

from __future__ import annotations

from kubeproof.docs_gen import SOC2_MAPPING, soc2_mapping
from paths import ROOT


def test_soc2_mapping_is_up_to_date() -> None:
    committed = (ROOT / SOC2_MAPPING).read_text(encoding="utf-8")
    assert committed == soc2_mapping(), "docs/soc2-mapping.md is stale: run `make docs`"
