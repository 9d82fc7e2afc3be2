"""Which images run where (pod status imageIDs folded into their top owners, image names
from manifests), pull Secrets parsed, advisory severities, and the results an assessed
image gives: one finding per container, package and advisory, a clean image passes, an
unreadable one is not evaluated."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeproof import frameworks
from kubeproof.images.assess import ImageAssessment
from kubeproof.images.cached import ScannedImage
from kubeproof.images.judge import (
    NEWLY_DISCLOSED,
    SCANNED,
    advisory_severity,
    image_results,
    with_image_checks,
)
from kubeproof.images.packages import NPM, PYPI, Package
from kubeproof.images.pull_secrets import PullSecretError, auths_of_secret
from kubeproof.images.reader import ImageContents
from kubeproof.images.running import (
    ImageIdError,
    images_in_cluster,
    images_in_manifests,
    pinned_reference,
)
from kubeproof.inventory import Coverage, Inventory, K8sObject
from kubeproof.model import Severity, Status
from kubeproof.scan import ScanReport
from kubeproof.vulndb.match import Finding, MatchReport

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


@pytest.mark.parametrize(
    ("image_id", "reference"),
    [
        (
            f"docker-pullable://registry.example/shop/api@{DIGEST}",
            f"registry.example/shop/api@{DIGEST}",
        ),
        (f"docker.io/library/nginx@{DIGEST}", f"docker.io/library/nginx@{DIGEST}"),
        (f"127.0.0.1:5000/a/b@{DIGEST}", f"127.0.0.1:5000/a/b@{DIGEST}"),
    ],
)
def test_pinned_reference_from_each_runtime(image_id: str, reference: str) -> None:
    assert pinned_reference(image_id) == (reference, DIGEST)


@pytest.mark.parametrize(
    ("image_id", "why"),
    [
        (DIGEST, "local image id"),
        (f"docker://{DIGEST}", "local image id"),
        ("nginx:1.27", "names no digest"),
        ("repo@sha256:short", "not a sha256 digest"),
        (f"@{DIGEST}", "names no repository"),
    ],
)
def test_image_ids_that_cannot_be_pulled(image_id: str, why: str) -> None:
    with pytest.raises(ImageIdError, match=why):
        pinned_reference(image_id)


@given(st.text(max_size=200))
def test_pinned_reference_never_crashes(text: str) -> None:
    try:
        reference, digest = pinned_reference(text)
    except ImageIdError as error:
        assert repr(text) in str(error)
    else:
        assert reference.endswith("@" + digest) and digest.startswith("sha256:")


def _obj(kind: str, name: str, uid: str, owner: str | None = None, **rest: Any) -> K8sObject:
    metadata: dict[str, Any] = {"name": name, "namespace": "shop", "uid": uid}
    if owner:
        metadata["ownerReferences"] = [{"uid": owner, "controller": True, "kind": "x"}]
    api = "apps/v1" if kind in ("Deployment", "ReplicaSet") else "v1"
    return K8sObject.from_raw({"apiVersion": api, "kind": kind, "metadata": metadata, **rest})


def _pod(name: str, owner: str | None, phase: str, statuses: dict[str, Any]) -> K8sObject:
    spec = {
        "imagePullSecrets": [{"name": "regcred"}],
        "initContainers": [{"name": "migrate", "image": "tools:1"}],
        "containers": [{"name": "api", "image": "api:1"}, {"name": "sidecar", "image": "s:1"}],
        "ephemeralContainers": [{"name": "debugger", "image": "busybox:1"}],
    }
    return _obj("Pod", name, f"uid-{name}", owner, spec=spec, status={"phase": phase, **statuses})


def test_running_containers_fold_into_their_deployment_and_dedupe_by_digest() -> None:
    template = {"spec": {"template": {"spec": {"containers": [{"name": "api"}]}}}}
    statuses = {
        "initContainerStatuses": [{"name": "migrate", "imageID": f"r.example/tools@{OTHER}"}],
        "containerStatuses": [
            {"name": "api", "imageID": f"docker-pullable://r.example/api@{DIGEST}"},
            {"name": "sidecar", "imageID": OTHER},  # a local image id
        ],
        "ephemeralContainerStatuses": [{"name": "debugger", "imageID": f"r.example/api@{DIGEST}"}],
    }
    inventory = Inventory(
        [
            _obj("Deployment", "api", "uid-d", **template),
            _obj("ReplicaSet", "api-1", "uid-rs", "uid-d", **template),
            _pod("api-1-a", "uid-rs", "Running", statuses),
            _pod("api-1-b", "uid-rs", "Running", statuses),
            _pod("done", None, "Succeeded", statuses),  # finished: runs nothing
            _pod("waiting", None, "Pending", {}),  # not started: runs nothing yet
        ]
    )
    found = images_in_cluster(inventory)
    assert set(found.images) == {DIGEST, OTHER}
    api = found.images[DIGEST]
    assert api.reference == f"r.example/api@{DIGEST}"
    assert [str(u.subject) for u in api.containers] == [
        "Deployment/shop/api[api]",
        "Deployment/shop/api[debugger]",
    ]
    assert api.pull_secrets == [("shop", "regcred")]
    assert [str(u.subject) for u in found.images[OTHER].containers] == [
        "Deployment/shop/api[migrate]"
    ]
    assert [(str(u.subject), "local image id" in why) for u, why in found.unreadable] == [
        ("Deployment/shop/api[sidecar]", True)
    ]


def test_running_pod_without_image_ids_is_unreadable() -> None:
    found = images_in_cluster(Inventory([_pod("bare", None, "Running", {})]))
    assert found.images == {}
    assert {str(u.subject) for u, _ in found.unreadable} == {
        "Pod/shop/bare[api]",
        "Pod/shop/bare[sidecar]",
    }


def test_manifest_images_as_written() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "api", "image": "r.example/api:1"},
                        {"name": "nameless"},
                    ]
                }
            }
        },
    }
    found = images_in_manifests(Inventory([K8sObject.from_raw(deployment)]))
    assert list(found.images) == ["r.example/api:1"]
    use = found.images["r.example/api:1"].containers[0]
    assert use.path == "spec.template.spec.containers[0].image"
    assert [why for _, why in found.unreadable] == ["the container names no image"]


def _secret(kind: str, key: str, document: Any) -> dict[str, Any]:
    data = base64.b64encode(json.dumps(document).encode()).decode()
    return {"type": kind, "data": {key: data}}


def test_pull_secret_types() -> None:
    entry = {"auth": base64.b64encode(b"u:p").decode()}
    modern = _secret("kubernetes.io/dockerconfigjson", ".dockerconfigjson", {"auths": {"r": entry}})
    legacy = _secret("kubernetes.io/dockercfg", ".dockercfg", {"r": entry})
    assert auths_of_secret(modern, "s") == auths_of_secret(legacy, "s") == {"r": entry}
    with pytest.raises(PullSecretError, match="of type 'Opaque'"):
        auths_of_secret({"type": "Opaque", "data": {}}, "s")
    with pytest.raises(PullSecretError, match=r"no \.dockercfg entry"):
        auths_of_secret({"type": "kubernetes.io/dockercfg"}, "s")


@given(
    st.dictionaries(
        st.sampled_from(["type", "data"]),
        st.recursive(
            st.none() | st.text(max_size=20) | st.integers(),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(
                    st.sampled_from([".dockerconfigjson", ".dockercfg", "x"]), inner, max_size=3
                )
            ),
            max_leaves=8,
        ),
    ),
    st.binary(max_size=64),
)
def test_pull_secret_parser_rejects_garbage_clearly(secret: dict[str, Any], raw: bytes) -> None:
    for candidate in (
        secret,
        {
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(raw).decode()},
        },
    ):
        try:
            auths = auths_of_secret(candidate, "imagePullSecret shop/x")
        except PullSecretError as error:
            assert str(error).startswith("imagePullSecret shop/x")
            assert base64.b64encode(raw).decode() not in str(error) or not raw
        else:
            assert isinstance(auths, dict)


@pytest.mark.parametrize(
    ("text", "severity"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", Severity.CRITICAL),
        ("CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:H/I:H/A:N", Severity.MEDIUM),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", Severity.CRITICAL),
        ("AV:N/AC:L/Au:N/C:P/I:P/A:P", Severity.HIGH),
        ("MODERATE", Severity.MEDIUM),
        ("HIGH", Severity.HIGH),
        ("unimportant", Severity.LOW),
        ("UNKNOWN", None),
        ("not yet assigned", None),
        ("CVSS:3.1/garbage", None),
    ],
)
def test_advisory_severity(text: str, severity: Severity | None) -> None:
    assert advisory_severity(text) is severity


def _finding(package: Package, advisory: str, severity: str) -> Finding:
    return Finding(package, advisory, ("CVE-1",), severity, "9.9", "summary", "npm", "2021-05-06")


def _assessed(
    reference: str, findings: list[Finding], newly: frozenset[str] = frozenset()
) -> ImageAssessment:
    packages = tuple(dict.fromkeys(f.package for f in findings)) or (
        Package(PYPI, "attrs", "23.1.0"),
    )
    contents = ImageContents(reference, DIGEST, None, None, packages)
    seen = datetime(2026, 1, 1, tzinfo=UTC)
    return ImageAssessment(
        reference,
        ScannedImage(contents, "{}", False),
        report=MatchReport(findings=findings, checked=len(packages)),
        first_seen={f.advisory_id: seen + timedelta(days=1) for f in findings},
        newly_disclosed=newly,
    )


def test_results_one_finding_per_container_package_and_advisory() -> None:
    lodash = Package(NPM, "lodash", "4.17.20", location="app/node_modules/lodash/package.json")
    template = {"spec": {"template": {"spec": {"containers": [{"name": "api"}]}}}}
    statuses = {
        "containerStatuses": [
            {"name": "api", "imageID": f"r.example/api@{DIGEST}"},
            {"name": "sidecar", "imageID": f"r.example/clean@{OTHER}"},
        ],
        "initContainerStatuses": [
            {"name": "migrate", "imageID": "r.example/gone@sha256:" + "ee" * 32}
        ],
    }
    inventory = Inventory(
        [
            _obj("Deployment", "api", "uid-d", **template),
            _pod("p", "uid-d", "Running", statuses),
        ]
    )
    images = images_in_cluster(inventory)
    assessed = {
        f"r.example/api@{DIGEST}": _assessed(
            "api",
            [_finding(lodash, "GHSA-1", "HIGH"), _finding(lodash, "GHSA-2", "UNKNOWN")],
            frozenset({"GHSA-2"}),
        ),
        f"r.example/clean@{OTHER}": _assessed("clean", []),
        "r.example/gone@sha256:" + "ee" * 32: ImageAssessment("gone", error="404 not found"),
    }
    results = image_results(images, assessed)
    summary = {(r.check.id, r.subject.container, r.status) for r in results}
    assert summary == {
        ("image.vulnerability-high", "api#npm/lodash#GHSA-1", Status.FAIL),
        ("image.vulnerability-unrated", "api#npm/lodash#GHSA-2", Status.FAIL),
        (NEWLY_DISCLOSED, "api#npm/lodash#GHSA-2", Status.FAIL),
        (SCANNED, "sidecar", Status.PASS),
        (SCANNED, "migrate", Status.NOT_EVALUATED),
    }
    assert len({r.fingerprint for r in results}) == len(results)
    high = next(r for r in results if r.check.id == "image.vulnerability-high")
    assert high.check.severity is Severity.HIGH and high.check.criteria.keys() == {"CC6.6"}
    assert high.subject.kind == "Deployment" and high.subject.name == "api"
    assert high.extra["container"] == "api" and high.extra["fixed_version"] == "9.9"
    assert high.extra["newly_disclosed"] is False
    newly = next(r for r in results if r.check.id == NEWLY_DISCLOSED)
    assert newly.check.criteria.keys() == {"CC7.1"}
    assert "published 2021-05-06" in newly.message and "2026-01-02" in newly.message
    gone = next(r for r in results if r.status is Status.NOT_EVALUATED)
    assert gone.reason is not None and "404 not found" in gone.reason


def test_image_checks_join_the_framework_groups_by_criterion() -> None:
    framework = with_image_checks(frameworks.load("soc2"))
    ids = {c.id for c in framework.checks}
    assert {SCANNED, NEWLY_DISCLOSED, "image.vulnerability-critical"} <= ids
    groups = {g.id: {c.id for c in g.checks} for g in framework.groups}
    assert SCANNED in groups["CC6.6"] and NEWLY_DISCLOSED in groups["CC7.1"]
    assert NEWLY_DISCLOSED not in groups["CC6.6"]
    assert with_image_checks(framework) is framework
    lodash = Package(NPM, "lodash", "4.17.20")
    report = ScanReport(framework, [])
    use_images = images_in_manifests(
        Inventory(
            [
                K8sObject.from_raw(
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": "p", "namespace": "shop"},
                        "spec": {"containers": [{"name": "c", "image": "r.example/a:1"}]},
                    }
                )
            ]
        )
    )
    report.results = image_results(
        use_images, {"r.example/a:1": _assessed("a", [_finding(lodash, "GHSA-1", "LOW")])}
    )
    verdicts = {g.id: g.verdict for g in report.summary()}
    assert verdicts["CC6.6"] == "failing"


@given(
    st.tuples(
        st.sampled_from(["", "CVSS:3.1/", "CVSS:3.0/", "CVSS:4.0/", "AV:", "CVSS:2/"]),
        st.text(alphabet="AVCNLHPRUISTMEQX:/0123456789.", max_size=80) | st.text(max_size=40),
    ).map("".join)
)
def test_advisory_severity_never_crashes(text: str) -> None:
    assert advisory_severity(text) in (None, *Severity)


def test_pods_that_could_not_be_listed_are_not_evaluated() -> None:
    coverage = Coverage(complete_by_default=False)
    coverage.record("Pod", "forbidden", "HTTP 403")
    found = images_in_cluster(Inventory(coverage=coverage))
    (result,) = image_results(found, {}, cluster="prod")
    assert (result.check.id, result.status, str(result.subject)) == (
        SCANNED,
        Status.NOT_EVALUATED,
        "Cluster/prod",
    )
    assert result.reason == "Pod forbidden (HTTP 403)"
    listed = Coverage(complete_by_default=False)
    listed.record("Pod", "listed")
    assert image_results(images_in_cluster(Inventory(coverage=listed)), {}) == []
