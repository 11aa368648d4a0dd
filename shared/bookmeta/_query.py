"""Search-query normalization and classification.

Two normal forms: ``normalize_display`` keeps what the user typed (case, accents) minus
whitespace noise and invisible format characters, for upstream calls, logs and display;
``normalize_key`` folds what does not change what a provider searches for (case, accents,
spacing, punctuation its tokenizer drops), and keeps what does: ``+`` and ``#`` (C++, C#, F#),
a ``.`` or ``-`` that starts a word (.NET, the exclusion operator ``-word``) and a ``.`` between
digits (3.11). Two queries that share a key share a cached answer, so folding too much serves
one book list for another.

``classify`` decides what kind of search a query is, in order:

1. An explicit prefix wins (case-insensitive, after NFKC): ``isbn:``, ``inauthor:``/``author:``,
   ``intitle:``/``title:``. Only a leading prefix counts; later operators stay in the text.
2. Text whose ``normalize_key`` cleans to an ISBN-10/13 with a correct check digit is an ISBN
   search. An ISBN-length digit string with a wrong check digit is not "repaired": it stays
   TEXT.
3. Anything else is TEXT. Capital letters decide nothing: after its prefix, two queries with
   the same ``normalize_key`` are the same search (same kind, same upstream calls, same cache
   key). Whether a TEXT query names an author is decided by what it finds (the proxy searches
   it as text and promotes it to an author search when the best matches' authors are the
   query), not by how it is typed.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from bookmeta._errors import InvalidInput, InvalidISBN
from bookmeta._isbn import canonical

__all__ = [
    "Query",
    "QueryKind",
    "classify",
    "drop_format_chars",
    "normalize_display",
    "normalize_key",
]


class QueryKind(StrEnum):
    """What a search query asks for."""

    ISBN = "isbn"
    AUTHOR = "author"
    TITLE = "title"
    TEXT = "text"


@dataclass(frozen=True)
class Query:
    """A classified query: ``text`` is the display text without prefix; ``isbn13`` only for ISBN."""

    kind: QueryKind
    text: str
    isbn13: str | None = None


_PREFIX_RE = re.compile(
    r"\s*(isbn|inauthor|author|intitle|title)\s*:(.*)", re.IGNORECASE | re.ASCII | re.DOTALL
)
_PREFIX_KINDS = {
    "isbn": QueryKind.ISBN,
    "inauthor": QueryKind.AUTHOR,
    "author": QueryKind.AUTHOR,
    "intitle": QueryKind.TITLE,
    "title": QueryKind.TITLE,
}
# Apostrophes (ASCII, right single quote, modifier letter) are one "'", kept inside a word, i.e.
# after a letter, digit or mark and before a letter (O'Brien, L'Engle, Ender's, 80's), and a
# space elsewhere (quotes around a word, 0'441 digit groups): the key form is also the text sent
# upstream, and providers match "o'brien", not "obrien".
_APOSTROPHES = frozenset("'\u2019\u02bc")
_APOSTROPHE = "'"
# Combining Diacritical Marks, its Extended and Supplement blocks, and those for symbols and halves.
_DIACRITIC_BLOCKS = (
    (0x0300, 0x036F),
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x20D0, 0x20FF),
    (0xFE20, 0xFE2F),
)
_KEPT_FORMAT = frozenset("\u200c\u200d")  # ZWNJ, ZWJ


def drop_format_chars(text: str) -> str:
    """``text`` without Unicode format characters (category Cf), ZWNJ and ZWJ excepted.

    Format characters are invisible but act on display: a bidi override (U+202E) shows the text
    after it reversed, isolates and marks reorder it, others hide inside names. ZWNJ and ZWJ
    (U+200C, U+200D) stay: they shape Persian and Indic scripts and join emoji, reordering
    nothing.
    """
    if text.isascii():
        return text
    return "".join(ch for ch in text if ch in _KEPT_FORMAT or unicodedata.category(ch) != "Cf")


def normalize_display(q: str) -> str:
    """Return ``q`` without format characters (see ``drop_format_chars``), in NFKC, whitespace
    runs collapsed to one space and trimmed; case is kept."""
    return " ".join(unicodedata.normalize("NFKC", drop_format_chars(q)).split())


def _is_diacritic(ch: str) -> bool:
    # Only the generic diacritic blocks (é, ë, ñ, ё, й): marks that carry meaning in their own
    # script (Indic virama and nukta, Japanese dakuten, Hebrew and Arabic points) are kept.
    code = ord(ch)
    return any(low <= code <= high for low, high in _DIACRITIC_BLOCKS)


# Kept in the key as typed: they change what a provider looks for (C++, C#, F#).
_KEPT = frozenset("+#")
# Kept where they start a word before a letter or digit (.NET, -word) and, for ".", between
# digits (3.11); elsewhere (J.R.R., Part-One, a final ".") folded like other punctuation.
_WORD_LEADING = frozenset(".-")


def _is_alnum(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LN"


def _is_digit(ch: str) -> bool:
    return unicodedata.category(ch) == "Nd"


_APOSTROPHE_RE = re.compile("'")


def _place_apostrophes(chars: str) -> str:
    """Keep each ``'`` of ``chars`` that is inside a word (see ``_APOSTROPHES``), else a space.
    A replaced apostrophe and a kept one are both neither letter, digit nor mark, so deciding
    each one on the input is the same as deciding left to right on the output."""
    last = len(chars) - 1

    def keep_or_space(match: re.Match[str]) -> str:
        i = match.start()
        before = unicodedata.category(chars[i - 1])[0] if i else " "
        after = unicodedata.category(chars[i + 1])[0] if i < last else " "
        return _APOSTROPHE if before in "LNM" and after == "L" else " "

    return _APOSTROPHE_RE.sub(keep_or_space, chars)


def _place_word_leading(chars: str) -> str:
    """Turn the ``.``, ``-`` and ``'`` of ``chars`` that carry no meaning upstream into spaces:
    ``.`` and ``-`` stay where they start a word (and ``.`` between digits), ``'`` inside a
    word."""
    if _APOSTROPHE in chars:
        chars = _place_apostrophes(chars)
    if "." not in chars and "-" not in chars:
        return chars
    out: list[str] = []
    last = len(chars) - 1
    for i, ch in enumerate(chars):
        if ch in _WORD_LEADING:
            before = out[-1] if out else " "
            after = chars[i + 1] if i < last else " "
            starts_word = before == " " and _is_alnum(after)
            decimal = ch == "." and _is_digit(before) and _is_digit(after)
            ch = ch if starts_word or decimal else " "
        out.append(ch)
    return "".join(out)


def _fold_once(q: str) -> str:
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", q).casefold())
    out: list[str] = []
    for ch in decomposed:
        if _is_diacritic(ch):
            continue
        if ch in _APOSTROPHES:
            out.append(_APOSTROPHE)
            continue
        kept = unicodedata.category(ch)[0] in "LNM" or ch in _KEPT or ch in _WORD_LEADING
        out.append(ch if kept else " ")
    folded = _place_word_leading(unicodedata.normalize("NFC", "".join(out)))
    return " ".join(folded.split())


# ASCII fast path: NFKC/NFKD are identities, casefold is lower(), no diacritics; + # . - '
# kept (. - ' then placed), every other non-alphanumeric character becomes a space.
_ASCII_FOLD = str.maketrans(
    {
        chr(c): " "
        for c in range(128)
        if not chr(c).isalnum() and chr(c) not in _KEPT | _WORD_LEADING | {_APOSTROPHE}
    }
)


def _fold_slow(q: str) -> str:
    folded = _fold_once(q)
    # Casefolding and normalization do not commute for a handful of code points; iterate to the
    # fixed point (reached in one or two rounds) so the function is idempotent.
    while (again := _fold_once(folded)) != folded:
        folded = again
    return folded


@functools.lru_cache(maxsize=4096)  # pure; a request folds its query several times
def normalize_key(q: str) -> str:
    """Return the cache-key form of ``q``: case, diacritics, spacing and idle punctuation folded.

    NFKC, casefold, NFKD with combining diacritics (U+0300 block and kin) dropped while
    script-specific marks (virama, dakuten) stay, apostrophes one ``'`` kept inside a word
    (``o'brien``, ``80's``) and a space elsewhere; ``+`` and ``#`` kept,
    ``.`` and ``-`` kept where they start a word before a letter or digit (``.net``, ``-word``)
    and ``.`` between digits (``3.11``); every other character that is not a letter, digit or
    mark (of any script) turned into a space, whitespace collapsed and trimmed. Idempotent:
    ``normalize_key(normalize_key(q))`` equals ``normalize_key(q)``.
    """
    if q.isascii():
        folded = q.lower().translate(_ASCII_FOLD)
        if "." in folded or "-" in folded or _APOSTROPHE in folded:
            folded = _place_word_leading(folded)
        return " ".join(folded.split())
    return _fold_slow(q)


def classify(q: str) -> Query:
    """Classify a search query as ISBN, AUTHOR, TITLE or TEXT (see the module docstring).

    The returned ``text`` is ``normalize_display`` of the query without its prefix; ``isbn13`` is
    the canonical ISBN-13 for ISBN queries and None otherwise. Empty text is returned as is; the
    caller decides whether an empty search is an error.

    Raises:
        InvalidInput: ``param="q"``; the query has an ``isbn:`` prefix but no valid ISBN after it.
            Queries without that prefix never raise. (The prefix is matched after NFKC and
            case-insensitively, so a full-width ``isbn:`` counts.)
    """
    text = normalize_display(q)
    prefixed = _PREFIX_RE.fullmatch(text)
    if prefixed is not None:
        kind = _PREFIX_KINDS[prefixed.group(1).casefold()]
        text = prefixed.group(2).strip()
        if kind is not QueryKind.ISBN:
            return Query(kind, text)
        try:
            return Query(kind, text, canonical(text))
        except InvalidISBN as exc:
            raise InvalidInput("q", str(exc)) from exc
    try:
        return Query(QueryKind.ISBN, text, canonical(normalize_key(text)))
    except InvalidISBN:
        return Query(QueryKind.TEXT, text)  # decided by the key: case and spacing never count
