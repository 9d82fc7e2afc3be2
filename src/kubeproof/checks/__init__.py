"""The check catalogue. See registry.py for how a check is written and described."""

from kubeproof.checks.registry import Check, catalogue, find

__all__ = ["Check", "catalogue", "find"]
