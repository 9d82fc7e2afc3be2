"""Notification settings from a YAML file and from flags.

```yaml
apiVersion: kubeproof.dev/v1alpha1
kind: NotifyConfig
channels:
  - {type: slack, urlEnv: SLACK_WEBHOOK_URL}     # or url: / urlFile:
  - {type: webhook, name: siem, url: "https://siem.example/kubeproof"}
minSeverity: medium          # default low
dedupWindow: 10m             # default 10m
ratePerMinute: 30            # per channel, default 30
burst: 10                    # default 10
maxAttempts: 5               # default 5
queueSize: 1000              # per channel, default 1000
```

A URL is a credential for Slack: `urlEnv` (an environment variable) or `urlFile` (a file
holding it) keep it out of the file and out of the process list. Errors name the file and
the channel, never the URL.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kubeproof.bounded import UnreadableFile, read_bounded_text
from kubeproof.model import Severity
from kubeproof.notify.channels import Channel, ChannelError, SlackChannel, WebhookChannel
from kubeproof.notify.dispatcher import NotifySettings
from kubeproof.sources.documents import DocumentError, load_single_document

CHANNEL_TYPES: dict[str, type[Channel]] = {"webhook": WebhookChannel, "slack": SlackChannel}
MAX_CONFIG_BYTES = 1 << 20  # a notification config is a page of YAML
MAX_URL_FILE_BYTES = 64 << 10  # a webhook URL, as a mounted Secret writes it
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_KNOWN_KEYS = {
    "apiVersion",
    "kind",
    "channels",
    "minSeverity",
    "dedupWindow",
    "ratePerMinute",
    "burst",
    "maxAttempts",
    "queueSize",
}


class NotifyConfigError(ValueError):
    """A notification setting that cannot be used; names the file or flag."""


def load_config(path: Path) -> tuple[list[Channel], NotifySettings]:
    where = str(path)
    try:
        text = read_bounded_text(path, MAX_CONFIG_BYTES, where)
        data = load_single_document(text, where)
    except (UnreadableFile, DocumentError) as refused:
        raise NotifyConfigError(str(refused)) from None
    if not isinstance(data, dict):
        raise NotifyConfigError(f"{where}: expected a mapping with channels:")
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise NotifyConfigError(f"{where}: unknown keys {', '.join(map(str, unknown))}")
    raw_channels = data.get("channels")
    if not isinstance(raw_channels, list) or not raw_channels:
        raise NotifyConfigError(f"{where}: channels: expected a non-empty list")
    channels = [_channel(where, index, item) for index, item in enumerate(raw_channels)]
    settings = NotifySettings(
        dedup_window_s=_duration(where, data, "dedupWindow", 600.0),
        rate_per_minute=_number(where, data, "ratePerMinute", 30.0),
        burst=int(_number(where, data, "burst", 10)),
        max_attempts=int(_number(where, data, "maxAttempts", 5)),
        queue_size=int(_number(where, data, "queueSize", 1000)),
        min_severity=_severity(where, data.get("minSeverity", "low")),
    )
    return channels, settings


def _channel(where: str, index: int, item: Any) -> Channel:
    label = f"{where}: channels[{index}]"
    if not isinstance(item, dict):
        raise NotifyConfigError(f"{label}: expected a mapping")
    kind = item.get("type")
    if kind not in CHANNEL_TYPES:
        raise NotifyConfigError(f"{label}: type must be one of {', '.join(CHANNEL_TYPES)}")
    name = item.get("name") or f"{kind}-{index + 1}"
    sources = [key for key in ("url", "urlEnv", "urlFile") if key in item]
    if len(sources) != 1:
        raise NotifyConfigError(f"{label} ({name}): give exactly one of url, urlEnv, urlFile")
    url = _url(label, name, sources[0], item[sources[0]])
    try:
        return CHANNEL_TYPES[kind](str(name), url)
    except ChannelError as error:
        raise NotifyConfigError(f"{label}: {error}") from None


def _url(label: str, name: str, source: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise NotifyConfigError(f"{label} ({name}): {source} must be a non-empty string")
    if source == "url":
        return value.strip()
    if source == "urlEnv":
        url = os.environ.get(value.strip(), "").strip()
        if not url:
            raise NotifyConfigError(f"{label} ({name}): environment variable {value} is not set")
        return url
    try:
        return read_bounded_text(value, MAX_URL_FILE_BYTES, f"urlFile {value}").strip()
    except UnreadableFile as refused:
        raise NotifyConfigError(f"{label} ({name}): {refused}") from None


def _number(where: str, data: dict[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value < math.inf  # .nan is neither
    ):
        raise NotifyConfigError(f"{where}: {key} must be a positive number")
    return float(value)


def _duration(where: str, data: dict[str, Any], key: str, default: float) -> float:
    value = data.get(key)
    if value is None:
        return default
    try:
        return parse_duration(str(value))
    except ValueError:
        raise NotifyConfigError(f"{where}: {key}: not a duration (use e.g. 30s, 10m)") from None


def parse_duration(text: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(text)
    return float(match.group(1)) * _UNIT_S[match.group(2) or "s"]


def _severity(where: str, value: Any) -> Severity:
    try:
        return Severity(str(value).lower())
    except ValueError:
        names = ", ".join(s.value for s in Severity)
        raise NotifyConfigError(f"{where}: minSeverity must be one of {names}") from None


def channels_from_flags(webhooks: Sequence[str], slacks: Sequence[str]) -> list[Channel]:
    """`--notify-webhook URL` and `--notify-slack URL` (each repeatable)."""
    channels: list[Channel] = []
    for flag, kind, urls in (
        ("--notify-webhook", "webhook", webhooks),
        ("--notify-slack", "slack", slacks),
    ):
        for index, url in enumerate(urls, 1):
            try:
                channels.append(CHANNEL_TYPES[kind](f"{kind}-{index}", url.strip()))
            except ChannelError:
                raise NotifyConfigError(f"{flag} #{index}: not an http(s)://HOST/... URL") from None
    return channels
