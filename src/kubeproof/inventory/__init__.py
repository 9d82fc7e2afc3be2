"""The typed, indexed view of everything a source produced."""

from kubeproof.inventory.index import Coverage, Inventory, KindCoverage
from kubeproof.inventory.objects import K8sObject
from kubeproof.inventory.workloads import Container, Workload

__all__ = ["Container", "Coverage", "Inventory", "K8sObject", "KindCoverage", "Workload"]
