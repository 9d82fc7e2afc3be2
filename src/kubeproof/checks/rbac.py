"""rbac checks."""

from kubeproof.checks.registry import check  # noqa: F401
