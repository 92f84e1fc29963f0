"""'Did you mean' hints for misspelt column and feature names."""

import difflib


def did_you_mean(name: str, candidates) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate (case-insensitive first), or ``""``."""
    candidates = list(candidates)
    same_case = [c for c in candidates if c.lower() == name.lower()]
    close = same_case or difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
