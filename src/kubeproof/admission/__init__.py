"""The validating admission webhook: the same checks as `kubeproof scan`, at admission.

policy.py reads the policy file, review.py speaks AdmissionReview, decide.py runs the one
engine over the one object, server.py serves HTTPS and metrics.py counts decisions.
"""
