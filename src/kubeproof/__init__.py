"""kubeproof: continuous, auditor-ready SOC 2 evidence for Kubernetes."""

__version__ = "0.1.0"
