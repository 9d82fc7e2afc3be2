"""Notifications of detections, Falco alerts and drift transitions: a generic JSON webhook
and Slack incoming webhooks, with deduplication, rate limiting and retries, sent off the
hot path."""

from kubeproof.notify.channels import Channel, SlackChannel, WebhookChannel
from kubeproof.notify.dispatcher import Notifier, NotifySettings
from kubeproof.notify.message import Notification

__all__ = [
    "Channel",
    "Notification",
    "Notifier",
    "NotifySettings",
    "SlackChannel",
    "WebhookChannel",
]
