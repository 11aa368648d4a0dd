"""Validation of search parameters (HTTP query strings and RPC arguments) and RPC lists.

Every rejection raises ``InvalidInput`` naming the parameter (a 400 over HTTP).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bookmeta import (
    DEFAULT_LANG,
    WARM_ISBNS_MAX,
    InvalidInput,
    InvalidISBN,
    canonical,
    normalize_display,
)

from .config import MAX_RESULTS_LIMIT
from .languages import normalize_language

MAX_Q_CHARS = 256
MAX_START_INDEX = 1000  # deep enough for any library app; Google pages no further in practice
MAX_ISBN_CHARS = 32
MAX_LIST_ITEMS = 1000
# warm_isbns: each ISBN costs up to ~4 KV/R2 operations (status reads, then writes), and an
# invocation may make 1,000; the warmer sends 100 per call.
MAX_WARM_ISBNS = WARM_ISBNS_MAX
MAX_ECHO_CHARS = 80  # an invalid input is echoed back cut to this length
MAX_KEY_CHARS = 512
MAX_BUDGET_MS = 600_000
MAX_SWEEP_PAGES = 10  # 2 R2 operations per page; an invocation may make 1,000
_NUMBER_RE = re.compile(r"[0-9]{1,3}")
_INDEX_RE = re.compile(r"[0-9]{1,4}")
_LANG_RE = re.compile(r"[A-Za-z]{2,3}")
# Control, surrogate, private-use and unassigned characters are refused unless whitespace.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn"})


def _refused(ch: str) -> bool:
    return unicodedata.category(ch) in _REFUSED_CATEGORIES and not ch.isspace()


# The same test for ASCII text, as one regex search instead of a per-character loop.
_ASCII_REFUSED_RE = re.compile(
    "[" + "".join(re.escape(chr(c)) for c in range(128) if _refused(chr(c))) + "]"
)


@dataclass(frozen=True, slots=True)
class SearchParams:
    """A validated search: display-normalized ``q``, 1-40 results, a language code, and the
    0-based index of the first result (Google's ``startIndex``)."""

    q: str
    max_results: int
    include_translations: bool
    lang: str
    start_index: int = 0


def _text(value: Any, param: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(param, "is required")
    if len(value) > max_chars:
        raise InvalidInput(param, f"must be at most {max_chars} characters")
    if (
        _ASCII_REFUSED_RE.search(value) is not None
        if value.isascii()
        else any(_refused(ch) for ch in value)
    ):
        raise InvalidInput(param, "contains control or unassigned characters")
    text = normalize_display(value)
    if not text:
        raise InvalidInput(param, "must not be empty")
    return text


def query_text(value: Any, param: str = "q") -> str:
    """A search text: a non-empty string of at most 256 characters, no control characters."""
    return _text(value, param, MAX_Q_CHARS)


def max_results(value: Any, default: int) -> int:
    """``maxResults``: absent gives ``default``; otherwise a plain integer 1-40."""
    if value is None:
        return default
    if isinstance(value, bool):
        raise InvalidInput("maxResults", "must be an integer")
    if isinstance(value, str):
        if _NUMBER_RE.fullmatch(value) is None:
            raise InvalidInput("maxResults", f"must be an integer from 1 to {MAX_RESULTS_LIMIT}")
        value = int(value)
    if not isinstance(value, int) or not 1 <= value <= MAX_RESULTS_LIMIT:
        raise InvalidInput("maxResults", f"must be an integer from 1 to {MAX_RESULTS_LIMIT}")
    return value


def start_index(value: Any) -> int:
    """``startIndex``: absent gives 0; otherwise a plain integer 0-1000."""
    if value is None:
        return 0
    if isinstance(value, str) and _INDEX_RE.fullmatch(value) is not None:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_START_INDEX:
        raise InvalidInput("startIndex", f"must be an integer from 0 to {MAX_START_INDEX}")
    return value


def boolean(value: Any, param: str, default: bool) -> bool:
    """A boolean: absent gives ``default``; otherwise exactly ``true``/``false``."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if value == "true":
        return True
    if value == "false":
        return False
    raise InvalidInput(param, "must be true or false")


def language(value: Any) -> str:
    """``langRestrict``: absent gives ``en``; otherwise a 2-3 letter code (``eng`` -> ``en``)."""
    if value is None:
        return DEFAULT_LANG
    if not isinstance(value, str) or _LANG_RE.fullmatch(value) is None:
        raise InvalidInput("langRestrict", "must be a 2-3 letter language code")
    code = normalize_language(value)
    assert code is not None  # two or three letters always normalize
    return code


def search_params(
    q: Any,
    max_results_value: Any,
    include_translations: Any,
    lang: Any,
    start: Any = None,
    *,
    default_max: int,
) -> SearchParams:
    """Validate the search parameters (strings from HTTP, typed values from RPC)."""
    return SearchParams(
        q=query_text(q),
        max_results=max_results(max_results_value, default_max),
        include_translations=boolean(include_translations, "includeTranslations", True),
        lang=language(lang),
        start_index=start_index(start),
    )


def search_query(query: Mapping[str, str], *, default_max: int) -> SearchParams:
    """Validate the search parameters of an HTTP query string."""
    return search_params(
        query.get("q"),
        query.get("maxResults"),
        query.get("includeTranslations"),
        query.get("langRestrict"),
        query.get("startIndex"),
        default_max=default_max,
    )


def isbn(value: Any, param: str = "isbn") -> str:
    """An ISBN-10/13 as its canonical ISBN-13."""
    text = _text(value, param, MAX_ISBN_CHARS)
    try:
        return canonical(text)
    except InvalidISBN as exc:
        raise InvalidInput(param, str(exc)) from exc


def _echo(raw: Any) -> str:
    """An invalid input as reported back: the string (or a repr), cut to 80 characters."""
    if isinstance(raw, str):
        return raw[:MAX_ECHO_CHARS]
    try:
        shown = repr(raw)
    except (ValueError, RecursionError):  # a 4,301-digit int, a deeply nested list
        shown = f"<{type(raw).__name__}>"
    return shown[:MAX_ECHO_CHARS]


def isbn_list(value: Any) -> tuple[list[str], list[str]]:
    """``warm_isbns`` input: (unique ISBN-13s in order, inputs that are not ISBNs).

    Invalid inputs are echoed cut to ``MAX_ECHO_CHARS`` characters.

    Raises:
        InvalidInput: ``isbns`` is not a list, or has more than ``MAX_WARM_ISBNS`` entries.
    """
    if not isinstance(value, list):
        raise InvalidInput("isbns", "must be a list of ISBN strings")
    if len(value) > MAX_WARM_ISBNS:
        raise InvalidInput("isbns", f"at most {MAX_WARM_ISBNS} per call, got {len(value)}")
    valid: list[str] = []
    invalid: list[str] = []
    for raw in value:
        try:
            isbn13 = isbn(raw)
        except InvalidInput:
            invalid.append(_echo(raw))
            continue
        if isbn13 not in valid:
            valid.append(isbn13)
    return valid, invalid


def budget_ms(value: Any) -> int | None:
    """``warm_isbns``' time budget: None (no deadline) or whole milliseconds, 1 to 10 minutes.

    Raises:
        InvalidInput: anything else (a bool, a string, a fraction, out of range).
    """
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BUDGET_MS:
        raise InvalidInput("budget_ms", f"must be whole milliseconds from 1 to {MAX_BUDGET_MS}")
    return value


def sweep_pages(value: Any) -> int:
    """``sweep_cache`` input: how many list pages (of 1,000 objects) to sweep, 1-10."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SWEEP_PAGES:
        raise InvalidInput("maxPages", f"must be an integer from 1 to {MAX_SWEEP_PAGES}")
    return value


def key_list(value: Any) -> list[str]:
    """``cache_status`` input: a list of at most 1,000 non-empty key strings of <= 512 chars."""
    if not isinstance(value, list) or len(value) > MAX_LIST_ITEMS:
        raise InvalidInput("keys", f"must be a list of at most {MAX_LIST_ITEMS} strings")
    for key in value:
        if not isinstance(key, str) or not key or len(key.encode("utf-8")) > MAX_KEY_CHARS:
            raise InvalidInput("keys", f"each key must be a string of 1-{MAX_KEY_CHARS} bytes")
    return list(dict.fromkeys(value))
