"""Search normalisation: accent-folded, lower-case alphanumeric words."""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[a-z0-9]+")
MAX_TERM = 100


def words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return [w[:MAX_TERM] for w in _WORD.findall(folded)]


def terms_for(name: str, aliases: list[str]) -> set[str]:
    """Every word of the name and aliases, plus each alias and the name run together."""
    result: set[str] = set()
    for text in [name, *aliases]:
        parts = words(text)
        result.update(parts)
        if len(parts) > 1:
            result.add("".join(parts)[:MAX_TERM])
    return result


def prefix_upper_bound(prefix: str) -> str:
    """The smallest string greater than every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
