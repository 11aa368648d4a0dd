"""ISBN cleaning, validation, conversion and extraction.

Pure functions, no I/O. Vocabulary (after isbnlib):

- ``clean(text)`` strips the wrappers spreadsheets and catalogues put around an ISBN;
- ``is_isbn10`` / ``is_isbn13`` check the check digit of a cleaned string;
- ``to_isbn13`` / ``to_isbn10`` convert (``to_isbn10`` is None for the 979 range);
- ``canonical(text)`` is the one form we store and key by: the ISBN-13 digits;
- ``extract_isbn`` / ``extract_all`` find valid ISBNs in messy cells and never invent one.

Invalid input raises :class:`~bookmeta._errors.InvalidISBN`; nothing returns ``""`` for "invalid".
"""

from __future__ import annotations

import re
import unicodedata

from bookmeta._errors import InvalidISBN

__all__ = [
    "canonical",
    "clean",
    "extract_all",
    "extract_isbn",
    "is_isbn10",
    "is_isbn13",
    "to_isbn10",
    "to_isbn13",
]

# Hyphen-like characters NFKC leaves alone (hyphen, non-breaking hyphen, figure/en/em dash, minus).
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
_SEPARATORS_RE = re.compile(rf"[\s\-{_DASHES}]+")
# "ISBN", "ISBN-10", "ISBN 13", "isbn:"; the 10/13 must stand alone so "ISBN 1302..." keeps digits.
_PREFIX_RE = re.compile(rf"ISBN(?:[\s\-{_DASHES}]?1[03](?=[\s:]|$))?\s*:?", re.IGNORECASE)
_ISBN10_RE = re.compile(r"[0-9]{9}[0-9X]")
_ISBN13_RE = re.compile(r"97[89][0-9]{10}")
# A run of digit groups (last char of a group may be an X check digit) joined by single separators,
# not glued to a letter or digit on either side (so ASINs such as B08ZYQT962 never match). The
# right-hand edge is checked in extract_all: a lookahead here would backtrack quadratically.
_RUN_RE = re.compile(rf"(?<![^\W_])[0-9]+[Xx]?(?:[\s\-{_DASHES}][0-9]+[Xx]?)*")
_GROUP_SPLIT_RE = re.compile(rf"[\s\-{_DASHES}]")


def clean(text: str) -> str:
    """Return ``text`` reduced to the bare ISBN characters, without validating them.

    Applies NFKC (full-width digits become ASCII), unwraps the Goodreads export formula
    ``="..."`` (``=""`` becomes ``""``), quotes and ``[...]`` brackets, drops an ``ISBN``,
    ``ISBN-10``, ``ISBN-13`` or ``isbn:`` prefix, removes hyphens, dashes and whitespace
    (including NBSP) and upper-cases a trailing ``x``.
    """
    s = unicodedata.normalize("NFKC", text).strip()
    while True:
        before = s
        if s.startswith("="):
            s = s[1:].strip()
        if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
            s = s[1:-1].strip()
        if len(s) >= 2 and s[0] == "[" and s[-1] == "]":
            s = s[1:-1].strip()
        prefix = _PREFIX_RE.match(s)
        if prefix is not None:
            s = s[prefix.end() :].strip()
        if s == before:
            break
    return _SEPARATORS_RE.sub("", s).upper()


def _isbn10_check(first9: str) -> str:
    total = sum(weight * int(digit) for weight, digit in zip(range(10, 1, -1), first9, strict=True))
    check = (11 - total % 11) % 11
    return "X" if check == 10 else str(check)


def _isbn13_check(first12: str) -> str:
    total = sum((3 if i % 2 else 1) * int(digit) for i, digit in enumerate(first12))
    return str((10 - total % 10) % 10)


def is_isbn10(s: str) -> bool:
    """Return True if ``s``, after :func:`clean`, is an ISBN-10 with a correct check digit."""
    digits = clean(s)
    return _ISBN10_RE.fullmatch(digits) is not None and _isbn10_check(digits[:9]) == digits[9]


def is_isbn13(s: str) -> bool:
    """Return True if ``s``, after :func:`clean`, is a 978/979 ISBN-13 with correct check digit."""
    digits = clean(s)
    return _ISBN13_RE.fullmatch(digits) is not None and _isbn13_check(digits[:12]) == digits[12]


def _invalid(text: str, digits: str) -> InvalidISBN:
    if len(digits) not in (10, 13):
        reason = f"expected 10 or 13 characters after cleaning, got {len(digits)}"
    elif len(digits) == 10 and _ISBN10_RE.fullmatch(digits) is None:
        reason = "an ISBN-10 is 9 digits followed by a digit or X"
    elif len(digits) == 13 and not digits.isdigit():
        reason = "an ISBN-13 is 13 digits"
    elif len(digits) == 13 and _ISBN13_RE.fullmatch(digits) is None:
        reason = "an ISBN-13 starts with 978 or 979"
    else:
        reason = "check digit mismatch"
    return InvalidISBN(f"not a valid ISBN: {text!r} ({reason})")


def to_isbn13(s: str) -> str:
    """Return the ISBN-13 digits for an ISBN-10 or ISBN-13 in any accepted spelling.

    Raises:
        InvalidISBN: ``s`` does not clean to a valid ISBN-10 or ISBN-13.
    """
    if _ISBN13_RE.fullmatch(s) is not None and _isbn13_check(s[:12]) == s[12]:
        return s  # already canonical: the common case on hot paths
    digits = clean(s)
    if is_isbn13(digits):
        return digits
    if is_isbn10(digits):
        body = "978" + digits[:9]
        return body + _isbn13_check(body)
    raise _invalid(s, digits)


def to_isbn10(s: str) -> str | None:
    """Return the ISBN-10 for ``s``, or None when it is a 979 ISBN-13 (that range has no ISBN-10).

    Raises:
        InvalidISBN: ``s`` does not clean to a valid ISBN-10 or ISBN-13.
    """
    digits = clean(s)
    if is_isbn10(digits):
        return digits
    if is_isbn13(digits):
        if not digits.startswith("978"):
            return None
        body = digits[3:12]
        return body + _isbn10_check(body)
    raise _invalid(s, digits)


def canonical(text: str) -> str:
    """Return the canonical form (ISBN-13 digits) of an ISBN-10 or ISBN-13 in any spelling.

    Raises:
        InvalidISBN: ``text`` is not exactly one valid ISBN; the message says why
            (length, characters, prefix or check digit). Use :func:`extract_isbn` for
            free text that merely contains an ISBN.
    """
    return to_isbn13(text)


def _candidates(run: str, *, glued_right: bool) -> list[str]:
    """Split a digit run into valid ISBN-13s, preferring the longest valid join of groups."""
    groups = [g.upper() for g in _GROUP_SPLIT_RE.split(run)]
    if glued_right:
        # The last group runs into a letter or digit (an ASIN, a part number): not an ISBN part.
        groups.pop()
    found: list[str] = []
    i = 0
    while i < len(groups):
        best: tuple[int, str] | None = None
        joined = ""
        for j in range(i, len(groups)):
            joined += groups[j]
            if len(joined) > 13:
                break
            if "X" in joined[:-1]:
                break
            if (len(joined) == 13 and is_isbn13(joined)) or (
                len(joined) == 10 and is_isbn10(joined)
            ):
                best = (j, joined)
        if best is None:
            i += 1
            continue
        found.append(to_isbn13(best[1]))
        i = best[0] + 1
    return found


def extract_all(text: str) -> list[str]:
    """Return every valid ISBN in ``text`` as canonical ISBN-13, de-duplicated, in order.

    Handles the shapes found in library exports: Goodreads ``="0441013597"``,
    ``ISBN 0-441-01359-7``, ``[0441013597]``, ``isbn:9780756411800``, spaced groups, a lowercase
    ``x``, full-width digits and several ISBNs in one cell (LibraryThing, Calibre). Digit runs
    glued to letters (ASINs such as ``B08ZYQT962``) and runs with a wrong check digit are
    ignored, never "repaired".
    """
    s = unicodedata.normalize("NFKC", text)
    s = _PREFIX_RE.sub(" ", s)
    seen: dict[str, None] = {}
    for match in _RUN_RE.finditer(s):
        end = match.end()
        glued_right = end < len(s) and (s[end].isalnum() or s[end] == "_")
        for isbn13 in _candidates(match.group(), glued_right=glued_right):
            seen.setdefault(isbn13, None)
    return list(seen)


def extract_isbn(text: str) -> str | None:
    """Return the first valid ISBN in ``text`` as canonical ISBN-13, or None if there is none."""
    found = extract_all(text)
    return found[0] if found else None
