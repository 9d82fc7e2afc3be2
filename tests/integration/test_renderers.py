"""Helm charts and Kustomize directories, rendered by the real tools."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest
from tools import tool_dir

from kubeproof.sources.files import RenderOptions, load_paths

pytestmark = pytest.mark.integration

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    "values.yaml": "replicas: 1\nprivileged: false\nimage: web:1.0\n",
    "templates/deployment.yaml": """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: {{ .Values.image }}
        securityContext:
          privileged: {{ .Values.privileged }}
""",
}


@pytest.fixture(scope="module")
def tools_on_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tool_dir(tmp_path_factory.mktemp("bin"), "helm", "kustomize"))


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_helm_chart_directory_with_values_and_set(
    tmp_path: Path, tools_on_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{tools_on_path}{os.pathsep}{os.environ['PATH']}")
    chart = write_tree(tmp_path / "charts" / "web", CHART)
    values = tmp_path / "prod.yaml"
    values.write_text("replicas: 3\n")
    loaded = load_paths(
        [str(tmp_path / "charts")],
        RenderOptions(values=[str(values)], set_values=["privileged=true"], release="shop"),
    )
    assert loaded.errors == []
    (deployment,) = loaded.objects
    assert deployment.name == "shop-web"
    assert deployment.spec["replicas"] == 3
    container = deployment.spec["template"]["spec"]["containers"][0]
    assert container["securityContext"]["privileged"] is True
    assert deployment.location is not None
    assert deployment.location.file == str(chart / "templates" / "deployment.yaml")


def test_packaged_chart(
    tmp_path: Path, tools_on_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{tools_on_path}{os.pathsep}{os.environ['PATH']}")
    chart = write_tree(tmp_path / "src" / "web", CHART)
    package = tmp_path / "web-0.1.0.tgz"
    with tarfile.open(package, "w:gz") as archive:
        archive.add(chart, arcname="web")
    loaded = load_paths([str(package)])
    assert loaded.errors == []
    assert [o.kind for o in loaded.objects] == ["Deployment"]


def test_broken_chart_is_an_error_naming_it(
    tmp_path: Path, tools_on_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{tools_on_path}{os.pathsep}{os.environ['PATH']}")
    write_tree(tmp_path / "bad", {**CHART, "templates/x.yaml": "{{ .Values.nope.deeper }}\n"})
    loaded = load_paths([str(tmp_path / "bad")])
    assert loaded.objects == []
    assert loaded.errors and loaded.errors[0].source.endswith("bad")
    assert "helm failed" in loaded.errors[0].message


def test_kustomize_directory(
    tmp_path: Path, tools_on_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only our tool directory: the kustomize build, not a kubectl that may be installed.
    monkeypatch.setenv("PATH", tools_on_path)
    write_tree(
        tmp_path / "app",
        {
            "kustomization.yaml": "namespace: shop\nresources: [cm.yaml]\n"
            "commonLabels: {team: payments}\n",
            "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"
            "data: {a: b}\n",
        },
    )
    loaded = load_paths([str(tmp_path / "app")])
    assert loaded.errors == []
    (config,) = loaded.objects
    assert (config.namespace, config.labels) == ("shop", {"team": "payments"})


def test_missing_helm_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    write_tree(tmp_path / "web", CHART)
    loaded = load_paths([str(tmp_path / "web")])
    assert loaded.objects == []
    assert "needs `helm` on PATH" in loaded.errors[0].message
