"""One small interface for every output format: adding a format is adding one module."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TextIO

from kubeproof.scan import ScanReport


class Renderer(ABC):
    name: str
    # Whether the output is for a terminal (and may use colour) rather than a file.
    interactive: bool = False

    @abstractmethod
    def render(self, report: ScanReport) -> str:
        """The whole report as text."""

    def write(self, report: ScanReport, out: TextIO) -> None:
        """Write the report to a stream; formats that can stream override this."""
        out.write(self.render(report))
