"""Notifications delivered to a real HTTP server on loopback: JSON and Slack bodies, a
retry after a 500, deduplication, rate limiting, a full queue, and no URL in any log."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeproof.model import Severity
from kubeproof.notify import Notification, Notifier, NotifySettings, SlackChannel, WebhookChannel
from kubeproof.notify.channels import ChannelError
from kubeproof.notify.config import NotifyConfigError, channels_from_flags, load_config
from kubeproof.notify.dispatcher import TokenBucket
from notify.http_sink import http_sink

FAST = NotifySettings(initial_backoff_s=0.05, max_backoff_s=0.2, rate_per_minute=6000, burst=50)


def notification(
    key: str = "audit.pod-exec:a1", severity: Severity = Severity.HIGH
) -> Notification:
    return Notification(
        key=key,
        event="detection",
        check="audit.pod-exec",
        title="Command executed in a running pod",
        severity=severity,
        subject="User alice",
        text="alice opened pods/exec into pods/shop/web-1/exec",
        criteria=("CC7.2", "CC6.1"),
        details={"auditIDs": ["a1"]},
    )


def wait_until(condition: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_webhook_notification_is_retried_after_a_500_and_arrives_once() -> None:
    logged: list[str] = []
    with http_sink([500]) as sink:
        notifier = Notifier([WebhookChannel("siem", sink.url)], FAST, log=logged.append)
        assert notifier.submit(notification())
        wait_until(lambda: sink.bodies(200))
        notifier.close()
    assert [status for _p, _b, status in sink.received] == [500, 200]
    [body] = sink.bodies(200)
    document = json.loads(body)
    assert document["kind"] == "KubeproofNotification"
    assert document["check"] == "audit.pod-exec" and document["severity"] == "high"
    assert document["details"] == {"auditIDs": ["a1"]}
    assert notifier.counts[("siem", "retried")] == 1 and notifier.counts[("siem", "sent")] == 1
    assert logged == []


def test_the_same_key_within_the_window_is_sent_once() -> None:
    with http_sink() as sink:
        notifier = Notifier([WebhookChannel("siem", sink.url)], FAST)
        assert notifier.submit(notification("k1"))
        assert not notifier.submit(notification("k1"))
        assert notifier.submit(notification("k2"))
        wait_until(lambda: len(sink.bodies()) == 2)
        notifier.close()
    assert sorted(json.loads(b)["key"] for b in sink.bodies()) == ["k1", "k2"]
    assert notifier.counts[("siem", "deduplicated")] == 1


def test_after_the_window_the_same_key_is_sent_again() -> None:
    now = [1000.0]
    settings = NotifySettings(dedup_window_s=60, rate_per_minute=6000, burst=50)
    with http_sink() as sink:
        notifier = Notifier([WebhookChannel("siem", sink.url)], settings, clock=lambda: now[0])
        assert notifier.submit(notification("k1"))
        now[0] += 59
        assert not notifier.submit(notification("k1"))
        now[0] += 2
        assert notifier.submit(notification("k1"))
        wait_until(lambda: len(sink.bodies()) == 2)
        notifier.close()


def test_slack_gets_its_incoming_webhook_format() -> None:
    with http_sink() as sink:
        notifier = Notifier([SlackChannel("slack", sink.url)], FAST)
        bad = notification()
        tricky = Notification(**{**_fields(bad), "text": "a <b> & c"})
        notifier.submit(tricky)
        wait_until(lambda: sink.bodies())
        notifier.close()
    document = json.loads(sink.bodies()[0])
    assert document["text"] == "Command executed in a running pod on User alice"
    [block] = document["blocks"]
    assert block["type"] == "section" and block["text"]["type"] == "mrkdwn"
    assert "a &lt;b&gt; &amp; c" in block["text"]["text"]
    assert "CC7.2, CC6.1" in block["text"]["text"]


def _fields(n: Notification) -> dict[str, object]:
    return {name: getattr(n, name) for name in n.__dataclass_fields__}


def test_a_4xx_is_not_retried_and_the_log_never_shows_the_url() -> None:
    logged: list[str] = []
    with http_sink([404]) as sink:
        notifier = Notifier([SlackChannel("slack", sink.url)], FAST, log=logged.append)
        notifier.submit(notification())
        wait_until(lambda: notifier.counts[("slack", "failed")] == 1)
        notifier.close()
    assert len(sink.received) == 1
    assert len(logged) == 1 and "HTTP 404" in logged[0]
    assert "secret-path" not in logged[0] and "127.0.0.1" in logged[0]
    assert "secret-path" not in repr(notifier.channels)


def test_an_unreachable_endpoint_is_retried_then_given_up_loudly() -> None:
    logged: list[str] = []
    with http_sink() as sink:
        url = sink.url
    settings = NotifySettings(max_attempts=3, initial_backoff_s=0.01, timeout_s=2)
    notifier = Notifier([WebhookChannel("siem", url)], settings, log=logged.append)
    notifier.submit(notification())
    wait_until(lambda: notifier.counts[("siem", "failed")] == 1)
    notifier.close()
    assert notifier.counts[("siem", "retried")] == 2
    assert "gave up after 3 attempts" in logged[0] and "secret-path" not in logged[0]


def test_below_the_minimum_severity_nothing_is_sent() -> None:
    with http_sink() as sink:
        settings = NotifySettings(min_severity=Severity.HIGH)
        notifier = Notifier([WebhookChannel("siem", sink.url)], settings)
        assert not notifier.submit(notification(severity=Severity.MEDIUM))
        notifier.close()
    assert sink.received == []


def test_a_full_queue_drops_and_counts_without_blocking() -> None:
    logged: list[str] = []
    settings = NotifySettings(queue_size=2, rate_per_minute=0.001, burst=1)
    with http_sink() as sink:
        notifier = Notifier([WebhookChannel("siem", sink.url)], settings, log=logged.append)
        started = time.monotonic()
        for index in range(10):
            notifier.submit(notification(f"k{index}"))
        assert time.monotonic() - started < 1.0
        notifier.close(timeout_s=0.5)
    assert notifier.counts[("siem", "dropped")] >= 6
    assert any("queue full" in line for line in logged)


def test_the_token_bucket_allows_a_burst_then_the_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(per_minute=60, burst=3, clock=lambda: now[0])
    assert [bucket.wait_time() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.wait_time() == pytest.approx(1.0)
    now[0] += 1.0
    assert bucket.wait_time() == 0.0


def test_rate_limiting_spaces_deliveries() -> None:
    settings = NotifySettings(rate_per_minute=600, burst=1)  # one every 0.1 s
    with http_sink() as sink:
        notifier = Notifier([WebhookChannel("siem", sink.url)], settings)
        started = time.monotonic()
        for index in range(4):
            notifier.submit(notification(f"k{index}"))
        wait_until(lambda: len(sink.bodies()) == 4)
        elapsed = time.monotonic() - started
        notifier.close()
    assert elapsed >= 0.28


def test_config_file_with_url_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KP_TEST_SLACK", "https://hooks.example/services/T0/B0/secret")
    path = tmp_path / "notify.yaml"
    path.write_text(
        "channels:\n  - {type: slack, urlEnv: KP_TEST_SLACK}\n"
        "  - {type: webhook, name: siem, url: 'http://127.0.0.1:9/x'}\n"
        "minSeverity: medium\ndedupWindow: 5m\nratePerMinute: 10\n"
    )
    channels, settings = load_config(path)
    assert [type(c).__name__ for c in channels] == ["SlackChannel", "WebhookChannel"]
    assert channels[0].url.endswith("/secret") and channels[1].name == "siem"
    assert settings.dedup_window_s == 300 and settings.min_severity is Severity.MEDIUM


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("channels: []\n", "channels: expected a non-empty list"),
        ("channels:\n  - {type: email, url: 'http://x/'}\n", "type must be one of"),
        ("channels:\n  - {type: slack}\n", "exactly one of url, urlEnv, urlFile"),
        ("channels:\n  - {type: slack, urlEnv: KP_UNSET_VARIABLE}\n", "is not set"),
        ("channels:\n  - {type: slack, url: 'ftp://h/secret-path'}\n", "must be http(s)"),
        ("channels: [\n", "invalid YAML"),
        ("channels:\n  - {type: slack, url: 'https://h/p'}\nburst: -1\n", "burst must be"),
        ("nope: 1\n", "unknown keys nope"),
        ("channels:\n  - {type: slack, url: 'https://h/p'}\nburst: .inf\n", "burst must be"),
        ("channels:\n  - {type: slack, url: 'https://h/p'}\nqueueSize: .nan\n", "queueSize"),
        ("[" * 100_000, "nesting"),
        ("a: &a " + "x" * (400 << 10) + "\nb: [" + ", ".join(["*a"] * 6000) + "]\n", "alias"),
    ],
)
def test_bad_config_files_are_refused_by_name(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "notify.yaml"
    path.write_text(text)
    with pytest.raises(NotifyConfigError) as raised:
        load_config(path)
    assert message in str(raised.value) and str(path) in str(raised.value)
    assert "secret-path" not in str(raised.value)


def test_flags_refuse_a_url_without_showing_it() -> None:
    with pytest.raises(NotifyConfigError) as raised:
        channels_from_flags([], ["hooks.example/services/secret-path"])
    assert "--notify-slack #1" in str(raised.value) and "secret-path" not in str(raised.value)
    with pytest.raises(ChannelError):
        WebhookChannel("x", "http://h:99999/")


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.dictionaries(
        st.sampled_from(["channels", "minSeverity", "dedupWindow", "burst", "ratePerMinute"]),
        yaml_values,
    )
    | st.builds(lambda items: {"channels": items}, st.lists(yaml_values, max_size=3))
)
def test_any_config_loads_or_is_refused_by_name(tmp_path: Path, data: object) -> None:
    path = tmp_path / "notify.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        channels, _settings = load_config(path)
    except NotifyConfigError as error:
        assert str(path) in str(error)
        return
    assert channels
