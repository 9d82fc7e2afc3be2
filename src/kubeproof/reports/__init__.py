"""Output formats for scan reports."""

from __future__ import annotations

from kubeproof.reports.interface import Renderer


def renderers() -> dict[str, type[Renderer]]:
    from kubeproof.reports.csv import CsvRenderer
    from kubeproof.reports.json import JsonRenderer
    from kubeproof.reports.junit import JunitRenderer
    from kubeproof.reports.sarif import SarifRenderer
    from kubeproof.reports.table import TableRenderer

    return {
        "table": TableRenderer,
        "json": JsonRenderer,
        "sarif": SarifRenderer,
        "junit": JunitRenderer,
        "csv": CsvRenderer,
    }


FORMATS = ("table", "json", "sarif", "junit", "csv")

__all__ = ["FORMATS", "Renderer", "renderers"]
