import pytest
from hypothesis import given
from hypothesis import strategies as st

from bookmeta._errors import BookmetaError, InvalidISBN
from bookmeta._isbn import (
    canonical,
    clean,
    extract_all,
    extract_isbn,
    is_isbn10,
    is_isbn13,
    to_isbn10,
    to_isbn13,
)

DUNE_10 = "0441013597"
DUNE_13 = "9780441013593"


def _isbn10_check(first9: str) -> str:
    """Reference check digit straight from REFERENCE.md (weights 10..2, mod 11, 10 is X)."""
    check = (11 - sum(w * int(d) for w, d in zip(range(10, 1, -1), first9, strict=True)) % 11) % 11
    return "X" if check == 10 else str(check)


def _isbn13_check(first12: str) -> str:
    """Reference check digit straight from REFERENCE.md (weights 1,3,1,3..., mod 10)."""
    return str((10 - sum((1, 3)[i % 2] * int(d) for i, d in enumerate(first12)) % 10) % 10)


isbn10s = st.text("0123456789", min_size=9, max_size=9).map(lambda b: b + _isbn10_check(b))
isbn13s = st.builds(
    lambda prefix, body: prefix + body + _isbn13_check(prefix + body),
    st.sampled_from(["978", "979"]),
    st.text("0123456789", min_size=9, max_size=9),
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(DUNE_10, DUNE_10, id="bare"),
        pytest.param('="0441013597"', DUNE_10, id="goodreads-formula"),
        pytest.param('=""', "", id="goodreads-empty-formula"),
        pytest.param("[0441013597]", DUNE_10, id="brackets"),
        pytest.param("ISBN 0-441-01359-7", DUNE_10, id="isbn-prefix-hyphens"),
        pytest.param("ISBN-10: 0441013597", DUNE_10, id="isbn10-prefix"),
        pytest.param("ISBN-13: 978-0-441-01359-3", DUNE_13, id="isbn13-prefix"),
        pytest.param("isbn:9780756411800", "9780756411800", id="lowercase-isbn-colon"),
        pytest.param("0 441 01359 7", DUNE_10, id="spaces"),
        pytest.param("0\u00a0441\u00a001359\u00a07", DUNE_10, id="nbsp"),
        pytest.param("0\u2013441\u201301359\u20137", DUNE_10, id="en-dashes"),
        pytest.param(
            "\uff10\uff14\uff14\uff11\uff10\uff11\uff13\uff15\uff19\uff17", DUNE_10, id="full-width"
        ),
        pytest.param("080442957x", "080442957X", id="lowercase-x"),
        pytest.param("  ISBN 1302000000 ", "1302000000", id="isbn-then-digits-13"),
    ],
)
def test_clean(raw: str, expected: str) -> None:
    """clean() strips wrappers, prefixes and separators and upper-cases X."""
    assert clean(raw) == expected


@pytest.mark.parametrize(
    ("isbn", "valid"),
    [
        pytest.param(DUNE_10, True, id="dune"),
        pytest.param("080442957X", True, id="x-check-digit"),
        pytest.param("080442957x", True, id="lowercase-x"),
        pytest.param("0-441-01359-7", True, id="hyphenated"),
        pytest.param("0441013598", False, id="bad-check-digit"),
        pytest.param("044101359X", False, id="x-where-digit-due"),
        pytest.param("X441013597", False, id="x-not-last"),
        pytest.param("044101359", False, id="too-short"),
        pytest.param(DUNE_13, False, id="isbn13"),
        pytest.param("B08ZYQT962", False, id="asin"),
        pytest.param("", False, id="empty"),
    ],
)
def test_is_isbn10(isbn: str, valid: bool) -> None:
    """is_isbn10() accepts exactly the ISBN-10s with a correct check digit."""
    assert is_isbn10(isbn) is valid


@pytest.mark.parametrize(
    ("isbn", "valid"),
    [
        pytest.param(DUNE_13, True, id="dune"),
        pytest.param("9780756411800", True, id="name-of-the-wind"),
        pytest.param("979-10-90636-07-1", True, id="979-hyphenated"),
        pytest.param("9780441013594", False, id="bad-check-digit"),
        pytest.param("9771234567003", False, id="issn-prefix-977"),
        pytest.param("1234567890128", False, id="not-bookland"),
        pytest.param(DUNE_10, False, id="isbn10"),
        pytest.param("978044101359X", False, id="x-in-isbn13"),
    ],
)
def test_is_isbn13(isbn: str, valid: bool) -> None:
    """is_isbn13() accepts exactly 978/979 ISBN-13s with a correct check digit."""
    assert is_isbn13(isbn) is valid


@pytest.mark.parametrize(
    ("isbn", "expected"),
    [
        pytest.param(DUNE_10, DUNE_13, id="dune-10"),
        pytest.param(DUNE_13, DUNE_13, id="dune-13-unchanged"),
        pytest.param("080442957X", "9780804429573", id="x-check-digit"),
        pytest.param("979-10-90636-07-1", "9791090636071", id="979"),
        pytest.param("ISBN 0-441-01359-7", DUNE_13, id="messy-10"),
    ],
)
def test_to_isbn13(isbn: str, expected: str) -> None:
    """to_isbn13() converts ISBN-10 and passes ISBN-13 through."""
    assert to_isbn13(isbn) == expected


@pytest.mark.parametrize(
    ("isbn", "expected"),
    [
        pytest.param(DUNE_13, DUNE_10, id="dune-13"),
        pytest.param(DUNE_10, DUNE_10, id="dune-10-unchanged"),
        pytest.param("9780804429573", "080442957X", id="x-check-digit"),
        pytest.param("9780756411800", "0756411807", id="name-of-the-wind"),
        pytest.param("979-10-90636-07-1", None, id="979-has-none"),
    ],
)
def test_to_isbn10(isbn: str, expected: str | None) -> None:
    """to_isbn10() converts 978 ISBN-13s and returns None for 979."""
    assert to_isbn10(isbn) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("0441013598", "check digit", id="bad-check-10"),
        pytest.param("9780441013594", "check digit", id="bad-check-13"),
        pytest.param("12345", "got 5", id="too-short"),
        pytest.param("", "got 0", id="empty"),
        pytest.param("B08ZYQT962", "9 digits followed by a digit or X", id="asin"),
        pytest.param("9771234567003", "978 or 979", id="wrong-prefix"),
        pytest.param("978044101359X", "13 digits", id="x-in-13"),
    ],
)
def test_invalid_raises_with_a_clear_message(text: str, reason: str) -> None:
    """canonical(), to_isbn13() and to_isbn10() raise InvalidISBN naming the input and reason."""
    for convert in (canonical, to_isbn13, to_isbn10):
        with pytest.raises(InvalidISBN, match=reason) as info:
            convert(text)
        assert repr(text) in str(info.value)


def test_invalid_isbn_is_a_value_error_in_the_tree() -> None:
    """InvalidISBN is both a BookmetaError and a ValueError."""
    with pytest.raises(BookmetaError):
        canonical("nope")
    with pytest.raises(ValueError, match="not a valid ISBN"):
        canonical("nope")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param('="0441013597"', DUNE_13, id="goodreads-formula"),
        pytest.param("ISBN 0-441-01359-7", DUNE_13, id="isbn-prefix-hyphens"),
        pytest.param("[0441013597]", DUNE_13, id="brackets"),
        pytest.param("0 441 01359 7", DUNE_13, id="spaces"),
        pytest.param("080442957x", "9780804429573", id="lowercase-x"),
        pytest.param(
            "\uff10\uff14\uff14\uff11\uff10\uff11\uff13\uff15\uff19\uff17", DUNE_13, id="fw"
        ),
        pytest.param("isbn:9780756411800", "9780756411800", id="isbn-colon"),
        pytest.param("ISBN9780756411800", "9780756411800", id="isbn-glued"),
        pytest.param("Dune (ISBN-13: 978-0-441-01359-3), Ace", DUNE_13, id="in-prose"),
        pytest.param("Vol. 3 0441013597", DUNE_13, id="number-before"),
        pytest.param("979-10-90636-07-1", "9791090636071", id="979"),
        pytest.param("B08ZYQT962", None, id="asin"),
        pytest.param("0441013598", None, id="bad-check-digit"),
        pytest.param("0441013597abc", None, id="glued-to-letters"),
        pytest.param("x0441013597", None, id="glued-letter-before"),
        pytest.param("04410135977", None, id="eleven-digits"),
        pytest.param('=""', None, id="goodreads-empty"),
        pytest.param("", None, id="empty"),
        pytest.param("no isbn here", None, id="prose"),
    ],
)
def test_extract_isbn(text: str, expected: str | None) -> None:
    """extract_isbn() finds the first valid ISBN as ISBN-13, or None, never a wrong one."""
    assert extract_isbn(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("0441013597, 080442957X", [DUNE_13, "9780804429573"], id="librarything-comma"),
        pytest.param("0441013597 9780756411800", [DUNE_13, "9780756411800"], id="space-separated"),
        pytest.param("0441013597\n9780441013593", [DUNE_13], id="same-book-twice"),
        pytest.param(
            "9780756411800; B08ZYQT962; 0441013597",
            ["9780756411800", DUNE_13],
            id="calibre-with-asin",
        ),
        pytest.param("0441013598, 0441013597", [DUNE_13], id="skips-invalid"),
        pytest.param("", [], id="empty"),
    ],
)
def test_extract_all(text: str, expected: list[str]) -> None:
    """extract_all() returns every valid ISBN, canonical, de-duplicated, in order."""
    assert extract_all(text) == expected


@given(isbn10s)
def test_isbn10_round_trips_through_isbn13(isbn10: str) -> None:
    """Every valid ISBN-10 survives ISBN-10 -> ISBN-13 -> ISBN-10."""
    isbn13 = to_isbn13(isbn10)
    assert isbn13.startswith("978")
    assert to_isbn10(isbn13) == isbn10


@given(st.one_of(isbn10s, isbn13s))
def test_to_isbn13_yields_a_valid_check_digit(isbn: str) -> None:
    """to_isbn13() output is 13 digits whose last is the reference check digit."""
    isbn13 = to_isbn13(isbn)
    assert len(isbn13) == 13
    assert isbn13.isdigit()
    assert isbn13[-1] == _isbn13_check(isbn13[:12])
    assert is_isbn13(isbn13)


@given(isbn13s, st.sampled_from(["{}", '="{}"', "[{}]", "ISBN {}", "isbn:{}", " {} "]))
def test_extract_isbn_finds_wrapped_isbns(isbn13: str, template: str) -> None:
    """extract_isbn() finds a valid ISBN-13 in every wrapper the exports use."""
    assert extract_isbn(template.format(isbn13)) == isbn13


@given(st.text())
def test_extract_all_returns_only_valid_isbn13s(text: str) -> None:
    """Whatever the input, extract_all() only returns valid, distinct ISBN-13s."""
    found = extract_all(text)
    assert all(is_isbn13(isbn) and len(isbn) == 13 for isbn in found)
    assert len(found) == len(set(found))
    assert extract_isbn(text) == (found[0] if found else None)
