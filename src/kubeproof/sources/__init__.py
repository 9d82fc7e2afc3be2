"""Where objects come from: files (YAML, JSON, Helm, Kustomize), and later clusters."""
