"""Output formats for scan reports."""

from __future__ import annotations

from kubeproof.reports.interface import Renderer


def renderers() -> dict[str, type[Renderer]]:
    from kubeproof.reports import csv, json, junit, sarif, table

    return {
        "table": table.TableRenderer,
        "json": json.JsonRenderer,
        "sarif": sarif.SarifRenderer,
        "junit": junit.JunitRenderer,
        "csv": csv.CsvRenderer,
    }


FORMATS = ("table", "json", "sarif", "junit", "csv")

__all__ = ["FORMATS", "Renderer", "renderers"]
