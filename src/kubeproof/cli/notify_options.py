"""The notification flags `kubeproof audit serve` and `kubeproof agent` share."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from kubeproof.cli.errors import UsageError
from kubeproof.notify import Notifier
from kubeproof.notify.config import NotifyConfigError, channels_from_flags, load_config
from kubeproof.notify.dispatcher import NotifySettings


def add_notify_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("notifications (docs/audit.md#notifications)")
    group.add_argument(
        "--notify-config",
        type=Path,
        metavar="FILE",
        help="notification channels and limits (YAML); keeps webhook URLs out of the process list",
    )
    group.add_argument(
        "--notify-webhook",
        action="append",
        default=[],
        metavar="URL",
        help="POST each notification as JSON to URL (repeatable)",
    )
    group.add_argument(
        "--notify-slack",
        action="append",
        default=[],
        metavar="URL",
        help="post each notification to a Slack incoming webhook (repeatable)",
    )


def notifier_from(arguments: argparse.Namespace, log: Callable[[str], None]) -> Notifier | None:
    """The notifier the flags describe, or None when no channel is given."""
    try:
        channels = channels_from_flags(arguments.notify_webhook, arguments.notify_slack)
        settings = NotifySettings()
        if arguments.notify_config is not None:
            from_file, settings = load_config(arguments.notify_config)
            channels = from_file + channels
    except NotifyConfigError as error:
        raise UsageError(str(error)) from None
    if not channels:
        return None
    return Notifier(channels, settings, log=log)
