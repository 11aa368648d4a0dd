"""Input checks of the ISBNdb worker (pure): names, paging, language, ISBN lists."""

from __future__ import annotations

from typing import Any

import pytest
from test_isbndb_support import DUNE10, DUNE13

from bookmeta import InvalidInput, InvalidISBN
from isbndb_app import validation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Frank Herbert  ", "Frank Herbert"),
        ("AC/DC", "AC/DC"),
        ("Zola, E\u0301mile", "Zola, \u00c9mile"),  # NFC
        ("\u6751\u4e0a\u6625\u6a39", "\u6751\u4e0a\u6625\u6a39"),
        ("x" * 200, "x" * 200),
    ],
    ids=["trimmed", "slash-kept", "nfc", "cjk", "200-chars"],
)
def test_author_names_accepted(raw: str, expected: str) -> None:
    """Names are trimmed and NFC-normalized; slashes and non-Latin scripts are fine."""
    assert validation.author_name(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "x" * 201, "a\x00b", "a\nb", "a\u2028b", "..", "?#", 42, None],
    ids=["empty", "blank", "201", "nul", "newline", "line-sep", "dots", "punct", "int", "none"],
)
def test_author_names_refused(raw: Any) -> None:
    """Empty, over-long, control-character or letterless names raise naming `name`."""
    with pytest.raises(InvalidInput) as info:
        validation.author_name(raw)
    assert info.value.param == "name"


def test_paging_defaults_clamp_and_types() -> None:
    """page defaults to 1, pageSize to (and at most) the maximum; ints and digit strings pass."""
    assert validation.page(None) == 1
    assert validation.page("3") == 3
    assert validation.page(2) == 2
    assert validation.page(2.0) == 2
    assert validation.page_size(None, maximum=50) == 50
    assert validation.page_size("500", maximum=50) == 50
    assert validation.page_size(7, maximum=50) == 7


@pytest.mark.parametrize("raw", ["0", "-1", "1.5", "", " 1", "1_0", "\uff11", True, 10_001, 1.5])
def test_bad_page_is_refused(raw: Any) -> None:
    """Anything but a plain integer from 1 to 10,000 is refused, naming `page`."""
    with pytest.raises(InvalidInput) as info:
        validation.page(raw)
    assert info.value.param == "page"


def test_language_codes() -> None:
    """Two or three ASCII letters, lower-cased; empty means no filter."""
    assert validation.language("EN") == "en"
    assert validation.language("deu") == "deu"
    assert validation.language("") is None
    assert validation.language(None) is None
    for bad in ("e", "engl", "e1", "en\x00", "\u00e9n", 3):
        with pytest.raises(InvalidInput):
            validation.language(bad)


def test_isbn_accepts_any_form_and_checks_the_digit() -> None:
    """ISBN-10, hyphenated or ISBN-13 become the ISBN-13; a bad check digit raises."""
    assert validation.isbn("0-441-01359-7") == DUNE13
    assert validation.isbn(DUNE13) == DUNE13
    with pytest.raises(InvalidISBN):
        validation.isbn("9780441013594")
    with pytest.raises(InvalidInput):
        validation.isbn("9" * 65)


def test_isbn_batch_dedupes_by_isbn13_and_reports_invalid() -> None:
    """ISBN-10 and ISBN-13 of one book count once; invalid inputs are listed with a reason."""
    batch = validation.isbn_batch([DUNE10, DUNE13, "junk", 5, "978-0-441-01359-3"])
    assert batch.valid == [DUNE13]
    assert [i["input"] for i in batch.invalid] == ["junk", "5"]
    assert all(i["reason"] for i in batch.invalid)


def test_isbn_batch_limits() -> None:
    """More than 1,000 ISBNs, or not a list, is refused naming `isbns` and the limit."""
    with pytest.raises(InvalidInput, match="1000") as info:
        validation.isbn_batch([DUNE13] * 1001)
    assert info.value.param == "isbns"
    with pytest.raises(InvalidInput):
        validation.isbn_batch(DUNE13)
