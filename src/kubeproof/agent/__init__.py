"""`kubeproof agent`: list, then watch, every kind the checks read; re-evaluate what a
change affects and record the verdicts that moved (see docs/agent.md)."""
