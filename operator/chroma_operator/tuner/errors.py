"""Failures the tuner reports with a reason code, a plain message and an exit code."""

from __future__ import annotations

EXIT_CODES = {
    "bad-input": 2,
    "bad-url": 2,
    "unknown-collection": 3,
    "no-collection": 3,
    "empty-collection": 3,
    "k-too-large": 3,
    "target-not-reached": 4,
    "unreachable": 5,
    "server-error": 5,
}
"""3: the collection cannot be tuned as asked; 4: the sweep ran but no point met the
target; 5: Chroma failed or could not be reached (worth a retry, the others are not)."""

NO_RETRY_EXIT_CODES = (2, 3, 4)


class TunerError(Exception):
    """A run that cannot go on; `reason` is a stable code the operator can show."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.reason, 1)
