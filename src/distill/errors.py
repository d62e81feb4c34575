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


def invalid_settings(error, what: str, where: str, fix: str, *, known: tuple[str, ...] = (),
                     flags: bool = False) -> DistillError:
    """A pydantic `ValidationError` of a settings object as one paragraph: "invalid WHAT: " and each problem as
    `field: message (got value)` (a list item as `rules[2]`; with `flags`, a top-level field as its command-line
    flag, `max_tokens` → `--max-tokens`). An unknown top-level key names the nearest of `known`."""
    import difflib

    problems = []
    for err in error.errors():
        loc = tuple(err["loc"])
        name = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        if flags and loc and isinstance(loc[0], str):
            name = "--" + name.replace("_", "-")
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else "valid keys: " + ", ".join(sorted(known))
            problems.append(f"unknown key '{name}'" + (f" ({hint})" if known and len(loc) == 1 else ""))
            continue
        message = err["msg"].removeprefix("Value error, ")
        got = f" (got {err['input']!r:.60})" if loc and err["type"] != "missing" and "got " not in message else ""
        problems.append(f"{name}: {message}{got}" if name else message)
    return DistillError(f"invalid {what}: " + "; ".join(problems), where=where, fix=fix)
