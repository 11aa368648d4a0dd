"""Input checks shared by the HTTP routes and the RPC methods (pure).

Every check raises `InvalidInput` naming the parameter (-> 400) or returns a clean value.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from bookmeta import InvalidInput, InvalidISBN, canonical, drop_format_chars

from .config import MAX_AUTHOR_CHARS, MAX_ISBNS_PER_REQUEST, MAX_PAGE

_DIGITS = re.compile(r"[0-9]{1,9}")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}")
# Cc control, Cs lone surrogate (cannot be encoded), Zl/Zp line and paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_MAX_ISBN_INPUT_CHARS = 64
_MAX_ECHO_CHARS = 80


def author_name(raw: Any) -> str:
    """A trimmed author name of 1-200 characters with a letter or digit and no control chars;
    invisible format characters (bidi overrides...) are dropped."""
    if not isinstance(raw, str):
        raise InvalidInput("name", "name must be a string")
    name = unicodedata.normalize("NFC", drop_format_chars(raw).strip())
    if not name:
        raise InvalidInput("name", "name must not be empty")
    if len(name) > MAX_AUTHOR_CHARS:
        raise InvalidInput("name", f"name must be at most {MAX_AUTHOR_CHARS} characters")
    if any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in name):
        raise InvalidInput("name", "name must not contain control characters")
    if not any(ch.isalnum() for ch in name):
        raise InvalidInput("name", "name must contain a letter or a digit")
    return name


def _integer(param: str, raw: Any) -> int:
    if isinstance(raw, bool):
        raise InvalidInput(param, f"{param} must be an integer")
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and _DIGITS.fullmatch(raw):
        return int(raw)
    raise InvalidInput(param, f"{param} must be an integer (digits only)")


def page(raw: Any) -> int:
    """Page number: an integer from 1 to 10,000 (None means 1)."""
    if raw is None:
        return 1
    value = _integer("page", raw)
    if not 1 <= value <= MAX_PAGE:
        raise InvalidInput("page", f"page must be between 1 and {MAX_PAGE}")
    return value


def page_size(raw: Any, *, maximum: int) -> int:
    """Page size: an integer >= 1, clamped to ``maximum`` (None means ``maximum``)."""
    if raw is None:
        return maximum
    value = _integer("pageSize", raw)
    if value < 1:
        raise InvalidInput("pageSize", "pageSize must be >= 1")
    return min(value, maximum)


def language(raw: Any) -> str | None:
    """A 2-3 letter language code, lower-cased; None or "" means no filter."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or not _LANGUAGE.fullmatch(raw):
        raise InvalidInput("language", "language must be a 2-3 letter code such as 'en'")
    return raw.lower()


def isbn(raw: Any) -> str:
    """The canonical ISBN-13 of an ISBN-10/13 in any spelling.

    Raises:
        InvalidInput: not a string, or too long to be an ISBN.
        InvalidISBN: wrong length, characters or check digit.
    """
    if not isinstance(raw, str):
        raise InvalidInput("isbn", "isbn must be a string")
    if len(raw) > _MAX_ISBN_INPUT_CHARS:
        raise InvalidInput("isbn", f"isbn must be at most {_MAX_ISBN_INPUT_CHARS} characters")
    return canonical(raw)


@dataclass(slots=True)
class IsbnBatch:
    """A bulk request sorted out: distinct canonical ISBN-13s (in order) and rejected inputs."""

    valid: list[str] = field(default_factory=list)
    invalid: list[dict[str, str]] = field(default_factory=list)


def isbn_batch(raw: Any) -> IsbnBatch:
    """Sort a list of ISBNs into valid (de-duplicated by ISBN-13) and invalid ones.

    Raises:
        InvalidInput: ``isbns`` is not a list, or has more than 1,000 items.
    """
    if not isinstance(raw, list):
        raise InvalidInput("isbns", "isbns must be a list of strings")
    if len(raw) > MAX_ISBNS_PER_REQUEST:
        raise InvalidInput(
            "isbns",
            f"at most {MAX_ISBNS_PER_REQUEST} ISBNs per request, got {len(raw)}; split the list",
        )
    batch = IsbnBatch()
    seen: set[str] = set()
    for item in raw:
        try:
            isbn13 = isbn(item)
        except (InvalidInput, InvalidISBN) as exc:
            shown = item if isinstance(item, str) else repr(item)
            reason = str(exc).removeprefix("isbn: ")
            batch.invalid.append({"input": shown[:_MAX_ECHO_CHARS], "reason": reason})
            continue
        if isbn13 not in seen:
            seen.add(isbn13)
            batch.valid.append(isbn13)
    return batch
