"""Series of valid ISBN-13s for tests; the check digit is bookmeta's, never recomputed here."""

from __future__ import annotations

from collections.abc import Collection

from bookmeta._isbn import _isbn13_check


def isbn13(first12: str) -> str:
    """``first12`` completed with its ISBN-13 check digit."""
    return first12 + _isbn13_check(first12)


def isbn_series(prefix: str, count: int, *, exclude: Collection[str] = ()) -> list[str]:
    """``count`` valid ISBN-13s: ``prefix`` then a counter from 0, skipping ``exclude``."""
    width = 12 - len(prefix)
    out: list[str] = []
    n = 0
    while len(out) < count:
        candidate = isbn13(f"{prefix}{n:0{width}d}")
        if candidate not in exclude:
            out.append(candidate)
        n += 1
    return out
