"""The Go-built command-line tools the integration tests run (helm, kustomize).

scripts/tools.sh builds them from the Go module proxy on first use and caches them by
version outside the repository; later runs take seconds.
"""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@cache
def built_tools() -> dict[str, Path]:
    completed = subprocess.run(
        ["bash", str(ROOT / "scripts" / "tools.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"scripts/tools.sh failed:\n{completed.stderr[-4000:]}")
    tools = {}
    for line in completed.stdout.splitlines():
        name, _, path = line.partition("=")
        if path:
            tools[name.lower()] = Path(path)
    return tools


def tool_dir(tmp: Path, *names: str) -> Path:
    """A directory holding the named tools under their plain names, for PATH."""
    tmp.mkdir(parents=True, exist_ok=True)
    for name in names:
        link = tmp / name
        if not link.exists():
            link.symlink_to(built_tools()[name])
    return tmp
