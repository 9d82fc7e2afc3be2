"""Analyses that look across objects: NetworkPolicy selection (and, later, reachability)."""
