import dataclasses
import re
import unicodedata

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bookmeta._errors import InvalidInput
from bookmeta._query import Query, QueryKind, classify, normalize_display, normalize_key

# "Fyodor Dostoevsky" in Cyrillic, escaped so no confusable letters sit in the source.
DOSTOEVSKY = (
    "\u0424\u0451\u0434\u043e\u0440 "
    "\u0414\u043e\u0441\u0442\u043e\u0435\u0432\u0441\u043a\u0438\u0439"
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("  Frank   HERBERT ", "Frank HERBERT", id="collapse-keep-case"),
        pytest.param("Dune\tMessiah\n", "Dune Messiah", id="tabs-newlines"),
        pytest.param("Bront\u00eb", "Bront\u00eb", id="accents-kept"),
        pytest.param("Bronte\u0308", "Bront\u00eb", id="nfkc-composes"),
        pytest.param("\uff24\uff55\uff4e\uff45", "Dune", id="full-width"),
        pytest.param("a\u00a0b", "a b", id="nbsp"),
        pytest.param("   ", "", id="blank"),
        pytest.param("\u202ecsv.exe", "csv.exe", id="bidi-override"),
        pytest.param("Frank\u2066 Herbert\u2069\u200e", "Frank Herbert", id="isolates-and-marks"),
        pytest.param("Her\u00adbert\ufeff", "Herbert", id="soft-hyphen-and-bom"),
        pytest.param("e\u200b\u0301", "\u00e9", id="dropped-before-nfkc-composes"),
        pytest.param("\u202e", "", id="only-format"),
        pytest.param("\u0645\u06cc\u200c\u062e", "\u0645\u06cc\u200c\u062e", id="zwnj-kept"),
        pytest.param("\U0001f469\u200d\U0001f4bb", "\U0001f469\u200d\U0001f4bb", id="zwj-kept"),
    ],
)
def test_normalize_display(raw: str, expected: str) -> None:
    """normalize_display() applies NFKC and collapses whitespace but keeps case and accents."""
    assert normalize_display(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("  Frank   HERBERT ", "frank herbert", id="case-and-spacing"),
        pytest.param("frank herbert", "frank herbert", id="already-normal"),
        pytest.param("Bront\u00eb", "bronte", id="diaeresis"),
        pytest.param("Gabriel Garc\u00eda M\u00e1rquez", "gabriel garcia marquez", id="acute"),
        pytest.param("Stra\u00dfe", "strasse", id="casefold-sharp-s"),
        pytest.param("Ender's Game", "ender's game", id="apostrophe-in-a-word-kept"),
        pytest.param("Tim O\u2019Brien", "tim o'brien", id="curly-apostrophe-is-ascii"),
        pytest.param("Flannery O\u02bcConnor", "flannery o'connor", id="modifier-apostrophe"),
        pytest.param("'Dune' by 'Herbert", "dune by herbert", id="quotes-spaced"),
        pytest.param("o''brien", "o brien", id="doubled-apostrophe-spaced"),
        pytest.param("the 80's", "the 80's", id="apostrophe-after-a-digit"),
        pytest.param("\u0915\u0940'x", "\u0915\u0940'x", id="apostrophe-after-a-mark"),
        pytest.param("J.R.R. Tolkien", "j r r tolkien", id="initials"),
        pytest.param("J. R. R. Tolkien", "j r r tolkien", id="spaced-initials"),
        pytest.param("Dune: Part-One!", "dune part one", id="punctuation"),
        pytest.param("\uff24\uff55\uff4e\uff45 \uff12", "dune 2", id="full-width"),
        pytest.param("\u0401\u043b\u043a\u0430", "\u0435\u043b\u043a\u0430", id="cyrillic-yo"),
        pytest.param("\u6751\u4e0a\u6625\u6a39", "\u6751\u4e0a\u6625\u6a39", id="cjk-kept"),
        pytest.param("\u304c\u3063\u3053\u3046", "\u304c\u3063\u3053\u3046", id="dakuten-kept"),
        pytest.param(
            "\u0939\u093f\u0928\u094d\u0926\u0940",
            "\u0939\u093f\u0928\u094d\u0926\u0940",
            id="virama",
        ),
        pytest.param("\u00bd", "1 2", id="vulgar-fraction"),
        pytest.param("---", "", id="only-punctuation"),
        pytest.param("C++ Primer", "c++ primer", id="plus-kept"),
        pytest.param("C# Primer", "c# primer", id="sharp-kept"),
        pytest.param(".NET Core", ".net core", id="leading-dot-kept"),
        pytest.param("(.NET) Core", ".net core", id="leading-dot-after-bracket"),
        pytest.param("Python 3.11", "python 3.11", id="decimal-dot-kept"),
        pytest.param("Dune -Messiah", "dune -messiah", id="exclusion-kept"),
        pytest.param("Dune - Messiah", "dune messiah", id="spaced-dash-folded"),
        pytest.param("Dune.", "dune", id="final-dot-folded"),
    ],
)
def test_normalize_key(raw: str, expected: str) -> None:
    """normalize_key() folds case, diacritics, punctuation and spacing, keeping every script."""
    assert normalize_key(raw) == expected


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("C++ Primer", "C# Primer"),
        ("C++ Primer", "C Primer"),
        ("F# in Action", "F in Action"),
        (".NET Core", "NET Core"),
        ("Python 3.11", "Python 311"),
        ("Python 3.11", "Python 3 11"),
        ("Dune -Messiah", "Dune Messiah"),
        ("Tim O'Brien", "Tim OBrien"),
    ],
)
def test_queries_that_differ_upstream_never_share_a_key(one: str, other: str) -> None:
    """Characters that change what a provider searches for (+ # ' and some . and -) stay."""
    assert normalize_key(one) != normalize_key(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("J.R.R. Tolkien", "J. R. R. Tolkien"),
        ("Frank HERBERT", "  frank   herbert "),
        ("Dune: Part-One!", "dune part one"),
        ("Tim O'Brien", "tim o\u2019brien"),
        ("'Dune'", "Dune"),
    ],
)
def test_queries_that_mean_the_same_upstream_still_share_a_key(one: str, other: str) -> None:
    """Case, spacing and punctuation a search engine tokenizes away are still folded."""
    assert normalize_key(one) == normalize_key(other)


@given(st.text(alphabet="ab1'\u2019\u02bc _.-\u0301\u093f\u0915\u00e9\u304b\u3099"))
def test_an_apostrophe_is_kept_only_inside_a_word(text: str) -> None:
    """Every ' left in a key follows a letter, digit or mark and precedes a letter; the fold of
    such text is idempotent too."""
    key = normalize_key(text)
    assert normalize_key(key) == key
    for i, ch in enumerate(key):
        if ch == "'":
            assert 0 < i < len(key) - 1, key
            assert unicodedata.category(key[i - 1])[0] in "LNM", key
            assert unicodedata.category(key[i + 1])[0] == "L", key


@given(st.text())
def test_normalize_key_is_idempotent(text: str) -> None:
    """normalize_key() of its own output changes nothing."""
    once = normalize_key(text)
    assert normalize_key(once) == once


@given(st.text())
def test_normalize_display_leaves_no_format_character_but_zwnj_and_zwj(text: str) -> None:
    """No Unicode Cf character (bidi controls...) survives, except ZWNJ and ZWJ."""
    shown = normalize_display(text)
    assert [ch for ch in shown if unicodedata.category(ch) == "Cf"] == [
        ch for ch in shown if ch in "\u200c\u200d"
    ]


@given(st.text())
def test_normalize_display_is_idempotent(text: str) -> None:
    """normalize_display() of its own output changes nothing."""
    once = normalize_display(text)
    assert normalize_display(once) == once


@given(st.text(alphabet=st.characters(categories=["L", "Zs"])))
def test_spelling_variants_share_a_key(text: str) -> None:
    """Upper-casing and padding a query do not change its key."""
    assert normalize_key(f"  {text.upper()}  ") == normalize_key(normalize_key(text).upper())


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        pytest.param(
            "isbn:0441013597",
            Query(QueryKind.ISBN, "0441013597", "9780441013593"),
            id="isbn-prefix",
        ),
        pytest.param(
            "ISBN: 978-0-441-01359-3",
            Query(QueryKind.ISBN, "978-0-441-01359-3", "9780441013593"),
            id="isbn-prefix-upper",
        ),
        pytest.param(
            "inauthor:Frank Herbert", Query(QueryKind.AUTHOR, "Frank Herbert"), id="inauthor"
        ),
        pytest.param(
            "Author:  frank  herbert", Query(QueryKind.AUTHOR, "frank herbert"), id="author"
        ),
        pytest.param("intitle:Dune", Query(QueryKind.TITLE, "Dune"), id="intitle"),
        pytest.param(
            "TITLE: Frank Herbert", Query(QueryKind.TITLE, "Frank Herbert"), id="title-prefix-wins"
        ),
        pytest.param("author:", Query(QueryKind.AUTHOR, ""), id="empty-author"),
        pytest.param(
            "0441013597", Query(QueryKind.ISBN, "0441013597", "9780441013593"), id="bare-isbn10"
        ),
        pytest.param(
            "0-441-01359-7",
            Query(QueryKind.ISBN, "0-441-01359-7", "9780441013593"),
            id="hyphenated-isbn10",
        ),
        pytest.param(
            "080442957x", Query(QueryKind.ISBN, "080442957x", "9780804429573"), id="lowercase-x"
        ),
        pytest.param(
            "979-10-90636-07-1",
            Query(QueryKind.ISBN, "979-10-90636-07-1", "9791090636071"),
            id="979",
        ),
        pytest.param(
            "9780756411800",
            Query(QueryKind.ISBN, "9780756411800", "9780756411800"),
            id="bare-isbn13",
        ),
        pytest.param(
            "0441013598", Query(QueryKind.TEXT, "0441013598"), id="bad-check-digit-is-text"
        ),
        pytest.param(
            "978 0 441 01359 4",
            Query(QueryKind.TEXT, "978 0 441 01359 4"),
            id="bad-check-13-is-text",
        ),
        pytest.param("Frank Herbert", Query(QueryKind.TEXT, "Frank Herbert"), id="name-is-text"),
        pytest.param(
            "J. R. R. Tolkien", Query(QueryKind.TEXT, "J. R. R. Tolkien"), id="spaced-initials"
        ),
        pytest.param("J.R.R. Tolkien", Query(QueryKind.TEXT, "J.R.R. Tolkien"), id="initials"),
        pytest.param(
            "Ursula K. Le Guin", Query(QueryKind.TEXT, "Ursula K. Le Guin"), id="four-words"
        ),
        pytest.param(
            "Flannery O'Connor", Query(QueryKind.TEXT, "Flannery O'Connor"), id="apostrophe"
        ),
        pytest.param(
            "Antoine de Saint-Exup\u00e9ry",
            Query(QueryKind.TEXT, "Antoine de Saint-Exup\u00e9ry"),
            id="particle",
        ),
        pytest.param(DOSTOEVSKY, Query(QueryKind.TEXT, DOSTOEVSKY), id="cyrillic-name"),
        pytest.param(
            "  Frank   Herbert ", Query(QueryKind.TEXT, "Frank Herbert"), id="display-normalized"
        ),
        pytest.param(
            "frank herbert", Query(QueryKind.TEXT, "frank herbert"), id="lowercase-is-text"
        ),
        pytest.param("Herbert", Query(QueryKind.TEXT, "Herbert"), id="one-word"),
        pytest.param(
            "Jose Maria Eca De Queiroz Jr",
            Query(QueryKind.TEXT, "Jose Maria Eca De Queiroz Jr"),
            id="five-words",
        ),
        pytest.param("The Hobbit", Query(QueryKind.TEXT, "The Hobbit"), id="title-word-vetoes"),
        pytest.param("Children of Dune", Query(QueryKind.TEXT, "Children of Dune"), id="of-vetoes"),
        pytest.param("DUNE MESSIAH", Query(QueryKind.TEXT, "DUNE MESSIAH"), id="shouting"),
        pytest.param("Catch 22", Query(QueryKind.TEXT, "Catch 22"), id="digits"),
        pytest.param("Frank Herbert 1965", Query(QueryKind.TEXT, "Frank Herbert 1965"), id="year"),
        pytest.param("Tolkien J.", Query(QueryKind.TEXT, "Tolkien J."), id="initial-last"),
        pytest.param("B08ZYQT962", Query(QueryKind.TEXT, "B08ZYQT962"), id="asin"),
        pytest.param("", Query(QueryKind.TEXT, ""), id="empty"),
        pytest.param(
            "\uff41\uff55\uff54\uff48\uff4f\uff52:Herbert",
            Query(QueryKind.AUTHOR, "Herbert"),
            id="full-width-prefix",
        ),
        pytest.param(
            "ISBN 0441013597",
            Query(QueryKind.ISBN, "ISBN 0441013597", "9780441013593"),
            id="isbn-word",
        ),
    ],
)
def test_classify(q: str, expected: Query) -> None:
    """classify() follows prefix, then ISBN check digit of the key form, else TEXT: capital
    letters never make an author search (the proxy decides that from what a text search finds)."""
    assert classify(q) == expected


@pytest.mark.parametrize(
    "q",
    [
        pytest.param("isbn:0441013598", id="bad-check-digit"),
        pytest.param("isbn:", id="empty"),
        pytest.param("ISBN: dune", id="not-digits"),
    ],
)
def test_classify_rejects_invalid_isbn_prefix(q: str) -> None:
    """An isbn: prefix with no valid ISBN raises InvalidInput for param q."""
    with pytest.raises(InvalidInput, match="not a valid ISBN") as info:
        classify(q)
    assert info.value.param == "q"
    assert info.value.__cause__ is not None


def test_query_is_frozen() -> None:
    """Query is an immutable value."""
    query = classify("Frank Herbert")
    with pytest.raises(dataclasses.FrozenInstanceError):
        query.text = "x"  # type: ignore[misc]


def test_query_kind_values_are_strings() -> None:
    """QueryKind members compare equal to their lowercase wire names."""
    assert [str(kind) for kind in QueryKind] == ["isbn", "author", "title", "text"]
    assert QueryKind("author") is QueryKind.AUTHOR


_ISBN_PREFIX = re.compile(r"isbn\s*:", re.IGNORECASE)


@given(st.text())
def test_classify_never_raises_without_isbn_prefix(q: str) -> None:
    """Any text without an isbn: prefix classifies, with display-normalized text."""
    assume(_ISBN_PREFIX.match(normalize_display(q)) is None)
    query = classify(q)
    assert query.kind in QueryKind
    assert (query.isbn13 is not None) is (query.kind is QueryKind.ISBN)
    if query.kind is QueryKind.TEXT:
        assert query.text == normalize_display(q)


@given(st.from_regex(r"[A-Za-z0-9 :.'-]{0,40}", fullmatch=True))
def test_classify_never_raises_on_query_like_text(q: str) -> None:
    """ASCII query-shaped text (no isbn: prefix) always classifies."""
    assume(_ISBN_PREFIX.match(normalize_display(q)) is None)
    assert isinstance(classify(q), Query)


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_fast_path_matches_the_general_fold(text: str) -> None:
    """The ASCII shortcut gives exactly what the Unicode path gives."""
    from bookmeta._query import _fold_slow

    assert normalize_key(text) == _fold_slow(text)


@pytest.mark.parametrize(
    "q",
    ["\u0131nauthor:x", "\u0130nauthor:x", "\u0131sbn:0441013597", "t\u0131tle:dune"],
    ids=["dotless-inauthor", "dotted-inauthor", "dotless-isbn", "dotless-title"],
)
def test_dotless_and_dotted_i_are_not_prefixes(q: str) -> None:
    """Only ASCII spellings of the prefixes count (IGNORECASE alone matched U+0130/U+0131)."""
    query = classify(q)  # used to raise KeyError (a 500 on /search/auto)
    assert query.text == q


_BODIES = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzéüß0123456789 -'.+#,:!?"), max_size=30
)


def _variant(text: str, flips: list[bool], pad: int) -> str:
    """The same query typed otherwise: letters' case flipped, spacing changed."""
    chars = [
        c.upper() if flip else c for c, flip in zip(text, flips + [False] * len(text), strict=False)
    ]
    return " " * pad + "  ".join("".join(chars).split(" ")) + " " * (pad % 2)


@given(
    prefix=st.sampled_from(["", "inauthor:", "intitle:", "INTITLE: "]),
    body=_BODIES,
    flips=st.lists(st.booleans(), max_size=30),
    pad=st.integers(0, 3),
)
def test_queries_with_the_same_key_are_the_same_search(
    prefix: str, body: str, flips: list[bool], pad: int
) -> None:
    """After its prefix, two queries with the same normalize_key classify alike: the same kind,
    the same ISBN, and (what goes upstream and into the key) the same normalize_key."""
    typed = prefix + _variant(body, flips, pad)
    plain = prefix + body
    assume(normalize_key(typed) == normalize_key(plain))
    try:
        a = classify(plain)
    except InvalidInput:
        with pytest.raises(InvalidInput):
            classify(typed)
        return
    b = classify(typed)
    assert (a.kind, a.isbn13, normalize_key(a.text)) == (b.kind, b.isbn13, normalize_key(b.text))
