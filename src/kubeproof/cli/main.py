"""`kubeproof` entry point. Exit codes: 0 clean, 1 failures at or above --fail-on,
2 usage or input errors (see docs/cli.md)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kubeproof import __version__
from kubeproof.cli import catalogue, evidence, history, image, netpol, rbac, scan, vulndb, webhook
from kubeproof.cli import exceptions as exceptions_cli
from kubeproof.cli.errors import EXIT_CLEAN, EXIT_USAGE, UsageError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubeproof",
        description="Continuous, auditor-ready SOC 2 evidence for Kubernetes.",
    )
    parser.add_argument("--version", action="version", version=f"kubeproof {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    scan.register(commands)
    catalogue.register(commands)
    history.register(commands)
    evidence.register(commands)
    rbac.register(commands)
    netpol.register(commands)
    image.register(commands)
    vulndb.register(commands)
    webhook.register(commands)
    exceptions_cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        code: int = arguments.run(arguments)
    except UsageError as error:
        print(f"kubeproof: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("kubeproof: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_CLEAN  # the reader went away (`| head`): nothing left to say
    return code
