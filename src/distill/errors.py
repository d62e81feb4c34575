"""User-facing errors: one paragraph saying what went wrong, where, and what to do."""

from __future__ import annotations


class DistillError(Exception):
    """A mistake the user can fix. The CLI prints it as one paragraph and exits non-zero.

    Args:
        what: what went wrong, in one sentence.
        where: the file, field, URL or model concerned (optional).
        fix: what the user should do about it (optional).
        code: process exit status (2 = bad input, 3 = refused by policy, 4 = verification failed).
    """

    def __init__(self, what: str, where: str | None = None, fix: str | None = None, code: int = 2):
        self.what, self.where, self.fix, self.code = what, where, fix, code
        super().__init__(self.paragraph())

    def paragraph(self) -> str:
        parts = [self.what.rstrip(".") + "."]
        if self.where:
            parts.append(f"Where: {self.where}.")
        if self.fix:
            parts.append(f"What to do: {self.fix.rstrip('.')}.")
        return " ".join(parts)
