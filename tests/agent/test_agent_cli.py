"""`kubeproof agent` options: durations and misuse give clear errors, never a traceback."""

from __future__ import annotations

import argparse

import pytest

from kubeproof.cli.agent import duration
from kubeproof.cli.main import main


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("500ms", 0.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "-1s", "1w", "soon"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        duration(text)


def test_missing_kubeconfig_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agent", "--db", "sqlite:///:memory:", "--kubeconfig", "/no/such/file"]) == 2
    assert "no such file" in capsys.readouterr().err
