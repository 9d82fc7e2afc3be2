"""The flags every HTTPS endpoint kubeproof serves takes (`webhook serve`, `audit serve`)."""

from __future__ import annotations

import argparse
from typing import Any


def add_server_arguments(parser: Any, *, port: int) -> None:
    parser.add_argument("--tls-cert", required=True, metavar="FILE", help="serving certificate")
    parser.add_argument("--tls-key", required=True, metavar="FILE", help="serving private key")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=port_number, default=port, help=f"port (default {port}; 0: any free port)"
    )


def port_number(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return int(text)
