"""Where objects come from: files (YAML, JSON, Helm, Kustomize) and live clusters."""

# Here rather than in the cluster reader, so that the input flags can name it without
# importing the HTTP client at every start.
REQUEST_TIMEOUT_S = 30.0
