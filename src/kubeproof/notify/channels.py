"""Where notifications go: each channel turns a Notification into its POST body. The URL
may hold a secret (a Slack webhook's path is its credential): only `display` is logged."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from kubeproof.model import Severity
from kubeproof.notify.message import Notification

_SLACK_EMOJI = {
    Severity.CRITICAL: ":red_circle:",
    Severity.HIGH: ":large_orange_circle:",
    Severity.MEDIUM: ":large_yellow_circle:",
    Severity.LOW: ":white_circle:",
    Severity.INFO: ":information_source:",
}


class ChannelError(ValueError):
    """A channel that cannot be used; the message never includes the URL's path."""


def safe_display(url: str) -> str:
    """scheme://host[:port]/…: enough to tell channels apart, never the secret path."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


@dataclass(frozen=True)
class Channel:
    name: str
    url: str

    def __post_init__(self) -> None:
        try:
            parts = urlsplit(self.url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ChannelError(f"notify channel {self.name}: not a valid URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ChannelError(f"notify channel {self.name}: the URL must be http(s)://HOST/...")

    @property
    def display(self) -> str:
        return f"{self.name} ({safe_display(self.url)})"

    def body(self, notification: Notification) -> bytes:
        raise NotImplementedError

    def __repr__(self) -> str:  # never the URL
        return f"{type(self).__name__}({self.display})"


class WebhookChannel(Channel):
    """The notification as kubeproof's JSON document (`kind: KubeproofNotification`)."""

    def body(self, notification: Notification) -> bytes:
        return orjson.dumps(notification.as_dict())


class SlackChannel(Channel):
    """Slack's incoming-webhook format: `text` (the fallback and the notification line)
    and a section block with the details."""

    def body(self, notification: Notification) -> bytes:
        emoji = _SLACK_EMOJI.get(notification.severity, "")
        headline = (
            f"{emoji} *{_escape(notification.title)}* ({notification.severity.value}) "
            f"on {_escape(notification.subject)}"
        )
        lines = [headline, _escape(notification.text)]
        if notification.criteria:
            lines.append(f"Criteria: {', '.join(notification.criteria)} · `{notification.check}`")
        text = "\n".join(lines)
        return orjson.dumps(
            {
                "text": f"{notification.title} on {notification.subject}",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}],
            }
        )


def _escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
