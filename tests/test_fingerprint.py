"""Finding fingerprints are stored in the evidence store and compared across scans and
versions: their formula must never change, however they are computed."""

from __future__ import annotations

import hashlib

import pytest

from kubeproof.model import (
    Subject,
    finding_fingerprint,
    fingerprint_prefix,
    fingerprint_subject,
)

SUBJECTS = [
    Subject("apps/v1", "Deployment", "shop", "web", "app"),
    Subject("apps/v1", "Deployment", "shop", "web"),
    Subject("rbac.authorization.k8s.io/v1", "ClusterRole", None, "admin"),
    Subject("", "Cluster", None, "manifests"),
    Subject("v1", "ConfigMap", "ünïcode", "名前", "c"),
]


@pytest.mark.parametrize("subject", SUBJECTS, ids=str)
def test_fingerprint_is_the_sha256_of_the_joined_identity(subject: Subject) -> None:
    parts = ["pss.privileged", subject.kind, subject.namespace or "", subject.name]
    parts.append(subject.container or "")
    expected = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]
    assert finding_fingerprint("pss.privileged", subject) == expected


def test_halves_copied_from_one_prefix_give_each_subject_its_fingerprint() -> None:
    prefix = fingerprint_prefix("workload.cpu-request")
    for subject in SUBJECTS:
        digest = prefix.copy()
        digest.update(fingerprint_subject(subject))
        assert digest.hexdigest()[:32] == finding_fingerprint("workload.cpu-request", subject)
    assert len({finding_fingerprint("x", s) for s in SUBJECTS}) == len(SUBJECTS)
