"""The purpose of an ISBNdb call, as callers send it (header or RPC argument)."""

from __future__ import annotations

import pytest

from bookmeta import PURPOSE_HEADER, InvalidInput, Purpose, parse_purpose


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, Purpose.PUBLIC),
        ("", Purpose.PUBLIC),
        ("  ", Purpose.PUBLIC),
        ("public", Purpose.PUBLIC),
        ("warm", Purpose.WARM),
        (" WARM ", Purpose.WARM),
        ("Public", Purpose.PUBLIC),
    ],
    ids=["none", "empty", "blank", "public", "warm", "warm-upper-spaced", "public-capital"],
)
def test_parse_purpose_accepts_the_two_values_and_defaults_to_public(
    raw: object, expected: Purpose
) -> None:
    """Absent means public; the two names are read case- and space-insensitively."""
    assert parse_purpose(raw) is expected


@pytest.mark.parametrize(
    "raw", ["admin", "warming", 1, True, ["warm"], {"p": "warm"}, "w" * 500], ids=repr
)
def test_parse_purpose_refuses_anything_else(raw: object) -> None:
    """Any other value is invalid input naming the purpose, with the value cut short."""
    with pytest.raises(InvalidInput) as info:
        parse_purpose(raw)
    assert info.value.param == "purpose"
    assert len(str(info.value)) < 120


def test_header_name_is_lower_case() -> None:
    """Headers are compared lower-case everywhere in bookmeta."""
    assert PURPOSE_HEADER == PURPOSE_HEADER.lower() == "x-isbndb-purpose"
