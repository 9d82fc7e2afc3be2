"""`kubeproof` entry point. Exit codes: 0 clean, 1 failures at or above --fail-on,
2 usage or input errors (see docs/cli.md)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from kubeproof import __version__
from kubeproof.cli.errors import EXIT_CLEAN, EXIT_USAGE, UsageError
from kubeproof.store import StoreError

# Each command and the module that defines it, in the order `--help` lists them. Only the
# module of the command being run is imported: a scan does not pay for the database,
# registry and webhook code at every start.
COMMANDS = {
    "scan": "scan",
    "frameworks": "catalogue",
    "checks": "catalogue",
    "explain": "catalogue",
    "history": "history",
    "findings": "history",
    "evidence": "evidence",
    "exceptions": "exceptions",
    "report": "report",
    "rbac": "rbac",
    "netpol": "netpol",
    "image": "image",
    "vulndb": "vulndb",
    "webhook": "webhook",
    "audit": "audit",
    "agent": "agent",
    "baseline": "baseline",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for one command, or for every command when `command` is not one."""
    parser = argparse.ArgumentParser(
        prog="kubeproof",
        description="Continuous, auditor-ready SOC 2 evidence for Kubernetes.",
    )
    parser.add_argument("--version", action="version", version=f"kubeproof {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    if command in COMMANDS:
        modules = [COMMANDS[command]]
    elif command == "--version":
        modules = []  # answered before any command is parsed
    else:
        modules = list(COMMANDS.values())
    for module in dict.fromkeys(modules):
        importlib.import_module(f"kubeproof.cli.{module}").register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv else None)
    arguments = parser.parse_args(argv)
    try:
        code: int = arguments.run(arguments)
    except (UsageError, StoreError) as error:
        print(f"kubeproof: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("kubeproof: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_CLEAN  # the reader went away (`| head`): nothing left to say
    return code
