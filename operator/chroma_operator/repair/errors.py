"""Exit codes of `chroma-operator repair`, shared with the Job builder (which retries)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_UNKNOWN_COLLECTION = 3
EXIT_DIFFERENCES = 4
"""A dry run found differences, or replicas still differ after the repair rounds."""
EXIT_UNREACHABLE = 5
"""The router or a replica did not answer: it was reported and skipped."""

NO_RETRY_EXIT_CODES = (EXIT_BAD_INPUT, EXIT_UNKNOWN_COLLECTION)


class RepairError(Exception):
    """A run that cannot start (router unreachable, bad input): one line and an exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
