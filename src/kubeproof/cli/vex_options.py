"""`--vex FILE`: OpenVEX documents for `image scan`, `image rescan` and `scan --images`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from kubeproof.cli.errors import UsageError

if TYPE_CHECKING:
    from kubeproof.vulndb.vex import VexIndex


def add_vex_argument(parser: Any) -> None:
    parser.add_argument(
        "--vex",
        metavar="FILE",
        action="append",
        default=[],
        help="OpenVEX document: findings it states not_affected or fixed are reported as "
        "excepted (never hidden); repeatable",
    )


def vex_index(arguments: argparse.Namespace) -> VexIndex:
    """The --vex documents, read before anything else: a bad file fails fast."""
    # Imported here so that a scan without --images does not load the matcher.
    from kubeproof.vulndb.vex import VexError, VexIndex, load_vex

    try:
        return VexIndex(load_vex(arguments.vex))
    except VexError as error:
        raise UsageError(f"--vex {error}") from None
