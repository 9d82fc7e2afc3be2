"""Helm charts and Kustomize directories, rendered by the tools their authors use."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

from kubeproof.sources.documents import InputError

if TYPE_CHECKING:
    from kubeproof.sources.files import RenderOptions

RENDER_TIMEOUT_SECONDS = 120
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def is_chart(directory: Path) -> bool:
    return (directory / "Chart.yaml").is_file()


def is_kustomization(directory: Path) -> bool:
    return any((directory / name).is_file() for name in KUSTOMIZATION_FILES)


def is_packaged_chart(path: Path) -> bool:
    if not path.name.endswith((".tgz", ".tar.gz")) or not path.is_file():
        return False
    try:
        with tarfile.open(path) as archive:
            return any(m.name.count("/") == 1 and m.name.endswith("/Chart.yaml") for m in archive)
    except (tarfile.TarError, OSError, EOFError):
        return False


def helm_template(chart: Path, options: RenderOptions) -> str | InputError:
    command = ["template", options.release, str(chart)]
    for values_file in options.values:
        command += ["--values", values_file]
    for assignment in options.set_values:
        command += ["--set", assignment]
    if options.namespace:
        command += ["--namespace", options.namespace]
    return _run("helm", command, chart, "a Helm chart")


def kustomize_build(directory: Path) -> str | InputError:
    if shutil.which("kubectl"):
        return _run("kubectl", ["kustomize", str(directory)], directory, "a Kustomize directory")
    return _run("kustomize", ["build", str(directory)], directory, "a Kustomize directory")


def _run(tool: str, arguments: list[str], source: Path, what: str) -> str | InputError:
    executable = shutil.which(tool)
    if executable is None:
        return InputError(
            str(source),
            f"{what}: rendering it needs `{tool}` on PATH, which was not found; skipped",
        )
    try:
        completed = subprocess.run(
            [executable, *arguments],
            capture_output=True,
            text=True,
            timeout=RENDER_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return InputError(str(source), f"{tool} did not finish in {RENDER_TIMEOUT_SECONDS} s")
    except OSError as error:
        return InputError(str(source), f"cannot run {tool}: {error}")
    if completed.returncode != 0:
        detail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return InputError(str(source), f"{tool} failed: {detail}")
    return completed.stdout
