"""Publication dates from providers, as ISO-like ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``."""

from __future__ import annotations

import re

_ISO_RE = re.compile(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?")
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_WORD_RE = re.compile(r"[A-Za-z]+\.?|\d+")
_YEAR_RE = re.compile(r"(?<!\d)(1[0-9]{3}|2[0-9]{3})(?!\d)")


def _iso(year: int, month: int | None, day: int | None) -> str:
    if month is None or not 1 <= month <= 12:
        return f"{year:04d}"
    if day is None or not 1 <= day <= 31:
        return f"{year:04d}-{month:02d}"
    return f"{year:04d}-{month:02d}-{day:02d}"


def normalize_date(raw: object) -> str | None:
    """Return ``raw`` as ``YYYY[-MM[-DD]]``, or None when it holds no year.

    Accepts ISO dates (``2005-08-02``, ``2005``), Open Library's prose dates (``August 2,
    2005``, ``Aug 02, 2005``, ``2 August 2005``, ``c1965``) and falls back to the first
    plausible four-digit year.
    """
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    iso = _ISO_RE.fullmatch(text)
    if iso is not None:
        return _iso(
            int(iso.group(1)),
            int(iso.group(2)) if iso.group(2) else None,
            int(iso.group(3)) if iso.group(3) else None,
        )
    year_match = _YEAR_RE.search(text)
    if year_match is None:
        return None
    year = int(year_match.group(1))
    month = day = None
    for word in _WORD_RE.findall(text):
        token = word.rstrip(".").lower()
        if token in _MONTHS and month is None:
            month = _MONTHS[token]
        elif token.isdigit() and len(token) <= 2 and day is None:
            day = int(token)
    return _iso(year, month, day if month is not None else None)


def date_sort_key(date: str) -> tuple[int, int, int]:
    """Sort key of a normalized date; a missing month or day sorts last within its span.

    So ``"2005"`` counts as the end of 2005 and the more precise ``"2005-08-02"`` wins a
    "take the earliest" comparison, while ``"2004"`` still beats ``"2005-01-01"``.
    """
    parts = [int(p) for p in date.split("-")]
    year = parts[0]
    month = parts[1] if len(parts) > 1 else 99
    day = parts[2] if len(parts) > 2 else 99
    return (year, month, day)
