"""Exit codes and the one exception a command raises for a mistake in how it was called."""

EXIT_CLEAN, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A mistake in how kubeproof was called; the message names the flag or input."""
