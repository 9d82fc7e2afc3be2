"""The period report as PDF: WeasyPrint prints the HTML page (kubeproof[pdf] installs it;
it needs the system's Pango libraries)."""

from __future__ import annotations

from pathlib import Path


class PdfUnavailable(RuntimeError):
    """WeasyPrint or the libraries it needs are missing."""


def write(html_text: str, output: Path) -> None:
    try:
        from weasyprint import HTML
    except ImportError as error:
        raise PdfUnavailable(
            "PDF output needs WeasyPrint: pip install 'kubeproof[pdf]' (and the Pango "
            f"libraries, e.g. Debian's libpango-1.0-0 libpangoft2-1.0-0): {error}"
        ) from None
    except OSError as error:  # WeasyPrint is there, a shared library it loads is not
        raise PdfUnavailable(
            f"WeasyPrint cannot load the Pango libraries it needs ({error}): install "
            "libpango-1.0-0 and libpangoft2-1.0-0"
        ) from None
    HTML(string=html_text).write_pdf(output)
