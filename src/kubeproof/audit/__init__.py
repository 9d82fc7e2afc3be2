"""Kubernetes audit-log anomaly detection (SOC 2 CC7.2): parse audit events, follow the
log, learn per-subject baselines, and run detectors whose meaning is data."""
