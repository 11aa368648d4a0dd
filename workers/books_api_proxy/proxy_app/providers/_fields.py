"""Defensive readers for provider JSON: wrong types read as missing, never raise."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bookmeta import drop_format_chars

_MAX_DIGITS = 9  # a page count or cover id, never more


def _clean(value: str) -> str:
    # Displayed text: no bidi overrides or other invisible format characters.
    return drop_format_chars(value).strip()


def text(obj: Mapping[str, Any], name: str) -> str | None:
    """A non-empty stripped string field without format characters, else None."""
    value = obj.get(name)
    if isinstance(value, str) and (cleaned := _clean(value)):
        return cleaned
    return None


def texts(obj: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """A list of non-empty strings (other entries dropped, duplicates removed, order kept)."""
    value = obj.get(name)
    if not isinstance(value, list):
        return ()
    out: list[str] = []
    for item in value:
        if isinstance(item, str) and (cleaned := _clean(item)) and cleaned not in out:
            out.append(cleaned)
    return tuple(out)


def positive_int(obj: Mapping[str, Any], name: str) -> int | None:
    """A positive integer field (ints or strings of at most 9 ASCII digits), else None.

    ``str.isdigit`` alone is not enough: it accepts ``"²"`` (which ``int`` refuses) and any
    number of digits (``int`` refuses more than 4,300).
    """
    value = obj.get(name)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str):
        digits = value.strip()
        if digits.isascii() and digits.isdigit() and len(digits) <= _MAX_DIGITS:
            number = int(digits)
            return number if number > 0 else None
    return None


def mapping(obj: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A nested object, or an empty one."""
    value = obj.get(name)
    return value if isinstance(value, Mapping) else {}


def https(url: str) -> str:
    """Upgrade a provider's ``http://`` image URL (mixed content breaks browser clients)."""
    return "https://" + url[len("http://") :] if url.startswith("http://") else url
