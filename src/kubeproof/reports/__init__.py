"""Output formats for scan reports."""

from __future__ import annotations

import importlib

from kubeproof.reports.interface import Renderer

# Each format and the module and class that render it; a scan imports only the one it
# writes (the table's terminal library alone costs a noticeable part of a small scan).
_MODULES = {
    "table": ("kubeproof.reports.table", "TableRenderer"),
    "json": ("kubeproof.reports.json", "JsonRenderer"),
    "sarif": ("kubeproof.reports.sarif", "SarifRenderer"),
    "junit": ("kubeproof.reports.junit", "JunitRenderer"),
    "csv": ("kubeproof.reports.csv", "CsvRenderer"),
}
FORMATS = tuple(_MODULES)


def renderer_for(format_name: str) -> type[Renderer]:
    """The renderer class of one format (a name from FORMATS)."""
    module, name = _MODULES[format_name]
    renderer: type[Renderer] = getattr(importlib.import_module(module), name)
    return renderer


def renderers() -> dict[str, type[Renderer]]:
    return {format_name: renderer_for(format_name) for format_name in FORMATS}


__all__ = ["FORMATS", "Renderer", "renderer_for", "renderers"]
