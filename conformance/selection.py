"""`--functions`, `--checks`, `--dtypes` patterns: a pattern that selects nothing is a user error, said in one line."""

from __future__ import annotations

import difflib
import fnmatch


def split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def unmatched(option: str, patterns: str, choices: list[str]) -> str | None:
    """The error for the first pattern of `--option` that matches none of `choices`, else None."""
    for pattern in split(patterns):
        if not any(fnmatch.fnmatch(c, pattern) for c in choices):
            near = difflib.get_close_matches(pattern, choices, n=3)
            hint = f"did you mean {', '.join(near)}?" if near else f"choose from {', '.join(sorted(choices))}"
            return f"--{option}: {pattern!r} matches nothing; {hint}"
    return None
