"""drift checks: workloads compared with the baseline approved for them
(`kubeproof baseline approve`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from kubeproof.checks.registry import NotApplicable, NotEvaluated, Violation, check
from kubeproof.inventory import Workload
from kubeproof.inventory.security_spec import describe_changes, security_spec, spec_changes

if TYPE_CHECKING:
    from kubeproof.engine import Context


@check("drift.unapproved-change")
def unapproved_change(workload: Workload, ctx: Context) -> Iterator[Violation]:
    baselines = ctx.baselines
    if baselines is None:
        # No evidence store was consulted (manifests, the webhook): nothing to compare with.
        raise NotApplicable
    approved = baselines.of(workload.subject)
    if approved is None:
        namespace = workload.obj.namespace or ""
        if namespace in baselines.namespaces:
            raise NotEvaluated(
                f"no approved baseline for {workload.subject} although namespace {namespace} "
                "is under change control: approve it with kubeproof baseline approve"
            )
        raise NotApplicable
    changes = spec_changes(approved.spec, security_spec(workload))
    if changes:
        yield Violation(
            f"changed since baseline BL-{approved.id} was approved by {approved.decided_by}: "
            f"{describe_changes(changes)}"
        )
