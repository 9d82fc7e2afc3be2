"""The period report's pieces without a database: date parsing, segments, escaping."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeproof.period import html, oscal, svg
from kubeproof.period.model import (
    ABSENT,
    FindingItem,
    LedgerCheck,
    Period,
    PeriodError,
    PeriodReport,
    WeekPoint,
    empty_counts,
    parse_period,
)
from kubeproof.period.query import _segments, _state_at


@given(st.text(max_size=30), st.text(max_size=30))
def test_any_text_is_a_period_or_a_period_error(first: str, last: str) -> None:
    try:
        period = parse_period(first, last)
    except PeriodError as error:
        assert "--from" in str(error) or "--to" in str(error)
    else:
        assert period.first_day <= period.last_day


def test_period_days_stop_at_today() -> None:
    period = parse_period("2026-01-30", "2026-02-02")
    assert period.days() == [
        date(2026, 1, 30),
        date(2026, 1, 31),
        date(2026, 2, 1),
        date(2026, 2, 2),
    ]
    assert period.days(until=date(2026, 1, 31)) == [date(2026, 1, 30), date(2026, 1, 31)]
    assert period.end == datetime(2026, 2, 3, tzinfo=UTC)


def test_segments_fold_runs_of_days() -> None:
    days = Period(date(2026, 1, 1), date(2026, 1, 6)).days()
    states = {date(2026, 1, 1): "pass", date(2026, 1, 2): "pass", date(2026, 1, 4): "fail"}
    segments = [(s.first_day.day, s.last_day.day, s.state) for s in _segments(states, days)]
    assert segments == [(1, 2, "pass"), (3, 3, ABSENT), (4, 4, "fail"), (5, 6, ABSENT)]


START = datetime(2026, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([(datetime(2026, 1, 1, tzinfo=UTC), "opened")], ("open", None)),
        (
            [
                (datetime(2026, 1, 1, tzinfo=UTC), "opened"),
                (datetime(2026, 1, 5, tzinfo=UTC), "resolved"),
            ],
            None,  # closed before the period began
        ),
        (
            [
                (datetime(2026, 1, 1, tzinfo=UTC), "opened"),
                (datetime(2026, 1, 12, tzinfo=UTC), "resolved"),
            ],
            ("resolved", datetime(2026, 1, 12, tzinfo=UTC)),
        ),
        (
            [
                (datetime(2026, 1, 1, tzinfo=UTC), "opened"),
                (datetime(2026, 1, 5, tzinfo=UTC), "resolved"),
                (datetime(2026, 1, 11, tzinfo=UTC), "reopened"),
                (datetime(2026, 1, 12, tzinfo=UTC), "deleted"),
            ],
            ("deleted", datetime(2026, 1, 12, tzinfo=UTC)),
        ),
    ],
)
def test_state_at_the_end_of_the_period(
    events: list[tuple[datetime, str]], expected: tuple[str, datetime | None] | None
) -> None:
    assert _state_at(events, START) == expected


def _hostile_report() -> PeriodReport:
    when = datetime(2026, 1, 5, tzinfo=UTC)
    finding = FindingItem(
        id=1,
        cluster='<script>alert("c")</script>',
        check_id="pss.privileged",
        severity="critical",
        kind="Deployment",
        namespace="shop",
        name="web",
        container="",
        state="open",
        first_seen=when,
        closed_at=None,
        due=None,
        overdue=False,
        reopened=0,
        message="<img src=x onerror=alert(1)>",
    )
    return PeriodReport(
        period=Period(date(2026, 1, 5), date(2026, 1, 11)),
        generated_at=when,
        framework_id="soc2",
        framework_title="<b>title</b>",
        cluster="<i>prod</i>",
        sla_days={},
        scans=[],
        days=Period(date(2026, 1, 5), date(2026, 1, 11)).days(),
        missing_days=[],
        counts=empty_counts(),
        weekly=[WeekPoint(date(2026, 1, 5), empty_counts())],
        criteria=[],
        workloads=[],
        findings=[finding],
        ledger=LedgerCheck(False, 0, "0" * 64, "<b>entry #1</b> was edited"),
        exceptions_available=False,
        store="sqlite:///x.db",
    )


def test_html_escapes_everything_it_is_given() -> None:
    page = html.render(_hostile_report())
    assert "<script>" not in page and "<b>title</b>" not in page and "<i>prod</i>" not in page
    assert "<b>entry #1</b>" not in page and "&lt;b&gt;entry #1&lt;/b&gt;" in page
    assert "No evidence in this period" in page


def test_oscal_of_an_empty_period_names_no_subjects() -> None:
    document = oscal.render(_hostile_report())
    result = document["assessment-results"]["results"][0]
    assert "observations" not in result and result["findings"] == []


def test_charts_draw_weeks_without_evidence_and_empty_calendars() -> None:
    chart = svg.weekly_chart([WeekPoint(date(2026, 1, 5), empty_counts())], "t")
    assert 'class="no-evidence"' in chart and "no evidence" in chart
    assert svg.calendar([], set(), "t") == ""
