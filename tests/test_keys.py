import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bookmeta._errors import InvalidISBN
from bookmeta._keys import KEY_VERSION, MAX_KEY_BYTES, cache_key, isbn_key, search_key

param_names = st.text(min_size=1, max_size=20).filter(str.isidentifier)
param_values = st.one_of(st.none(), st.booleans(), st.integers(), st.text())


def test_key_version_is_v2() -> None:
    """Keys are versioned (v2: + # and word-leading . - kept) so old entries are orphaned."""
    assert KEY_VERSION == "v2"
    assert cache_key("search").startswith("v2:search:")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({}, "v2:search:", id="no-params"),
        pytest.param({"q": "dune", "max": 10}, "v2:search:max=10&q=dune", id="sorted-by-name"),
        pytest.param({"q": "dune", "lang": None}, "v2:search:q=dune", id="none-dropped"),
        pytest.param({"a": True, "b": False}, "v2:search:a=true&b=false", id="bools-lowercase"),
        pytest.param({"n": 0, "m": -3}, "v2:search:m=-3&n=0", id="ints"),
        pytest.param(
            {"q": "  Frank   HERBERT "}, "v2:search:q=frank%20herbert", id="normalized-encoded"
        ),
        pytest.param({"q": "Bront\u00eb"}, "v2:search:q=bronte", id="diacritics-folded"),
        pytest.param(
            {"q": "\u6751\u4e0a"}, "v2:search:q=%E6%9D%91%E4%B8%8A", id="utf8-percent-encoded"
        ),
        pytest.param({"q": ""}, "v2:search:q=", id="empty-string-kept"),
    ],
)
def test_cache_key(params: dict[str, str | int | bool | None], expected: str) -> None:
    """cache_key() sorts, drops None, spells bools, normalizes and percent-encodes."""
    assert cache_key("search", **params) == expected


def test_separators_in_values_cannot_collide() -> None:
    """A value holding '&' or '=' never reads as another param."""
    assert cache_key("x", a="1&b=2") != cache_key("x", a="1", b="2")
    assert cache_key("x", a="1&b=2") == "v2:x:a=1%20b%202"


def test_bool_and_int_do_not_share_a_key() -> None:
    """True is spelled 'true', not '1'."""
    assert cache_key("x", a=True) != cache_key("x", a=1)


def test_long_keys_are_hashed() -> None:
    """A key over 512 bytes keeps its prefix and replaces params by their sha256."""
    key = cache_key("search", q="dune " * 200)
    body = "q=" + "%20".join(["dune"] * 200)
    assert key == "v2:search:h:" + hashlib.sha256(body.encode()).hexdigest()
    assert len(key.encode()) <= MAX_KEY_BYTES


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("", id="empty"),
        pytest.param("Search", id="uppercase"),
        pytest.param("a:b", id="colon"),
        pytest.param("k" * 65, id="too-long"),
    ],
)
def test_bad_kind_is_a_programming_error(kind: str) -> None:
    """cache_key() refuses kinds that could break the key format."""
    with pytest.raises(ValueError, match="kind must match"):
        cache_key(kind)


@given(st.dictionaries(param_names, param_values, max_size=8))
def test_cache_key_never_exceeds_512_bytes(params: dict[str, str | int | bool | None]) -> None:
    """Whatever the params, the key fits the KV key limit."""
    key = cache_key("search", **params)
    assert key.startswith("v2:search:")
    assert len(key.encode("utf-8")) <= MAX_KEY_BYTES


# Latin letters, digits and spaces: scripts where upper/lower are true spelling variants (the
# Turkish dotless i, say, is not case-paired with I under casefolding).
latin_queries = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, categories=["L", "Nd", "Zs"])
)


@given(latin_queries)
def test_two_spellings_share_a_key(q: str) -> None:
    """Case and spacing variants of a query share a cache key."""
    assert cache_key("search", q=f"  {q.upper()} ") == cache_key("search", q=q.lower())


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param("9780441013593", id="isbn13"),
        pytest.param("0441013597", id="isbn10"),
        pytest.param("978-0-441-01359-3", id="hyphenated"),
        pytest.param("ISBN 0-441-01359-7", id="prefixed"),
    ],
)
def test_search_key_canonicalizes_isbns(spelling: str) -> None:
    """Every spelling of one ISBN gives the same search key."""
    assert search_key("isbn", spelling, max_results=1) == (
        "v2:search:kind=isbn&max=1&q=9780441013593&translations=true"
    )


def test_search_key_spells_every_option() -> None:
    """search_key() includes lang and translations, and matches cache_key()."""
    key = search_key("author", "Frank  Herbert", max_results=10, lang="en", translations=False)
    assert key == "v2:search:kind=author&lang=en&max=10&q=frank%20herbert&translations=false"
    assert key == cache_key(
        "search", kind="author", q="frank herbert", max=10, lang="en", translations=False
    )


def test_search_key_separates_kinds_and_limits() -> None:
    """Different kinds or result counts never share a key."""
    keys = {
        search_key("text", "dune", max_results=10),
        search_key("title", "dune", max_results=10),
        search_key("title", "dune", max_results=20),
        search_key("title", "dune", max_results=20, lang="fr"),
    }
    assert len(keys) == 4


def test_search_key_separates_programming_languages() -> None:
    """C++, C# and C are three searches upstream, so three keys; + and # are percent-encoded."""
    keys = [search_key("title", q, max_results=10) for q in ("C++ Primer", "C# Primer", "C Primer")]
    assert len(set(keys)) == 3
    assert "q=c%2B%2B%20primer" in keys[0]
    assert "q=c%23%20primer" in keys[1]


def test_search_key_keys_pages_from_the_second_on() -> None:
    """start 0 is the plain key (the warmer's); every later startIndex has its own."""
    first = search_key("author", "Frank Herbert", max_results=40, lang="en", translations=False)
    assert (
        search_key(
            "author", "Frank Herbert", max_results=40, lang="en", translations=False, start=0
        )
        == first
    )
    later = {search_key("author", "Frank Herbert", max_results=40, start=n) for n in (1, 40, 80)}
    assert len(later) == 3
    assert first not in later
    assert "start=40" in search_key("author", "x", max_results=40, start=40)


def test_search_key_rejects_invalid_isbn() -> None:
    """An isbn search with an invalid ISBN raises InvalidISBN."""
    with pytest.raises(InvalidISBN):
        search_key("isbn", "0441013598", max_results=1)


@pytest.mark.parametrize(
    "spelling",
    ["9780441013593", "0441013597", "ISBN 0-441-01359-7", '="0441013597"', "978-0-441-01359-3"],
)
def test_isbn_key_is_the_same_for_every_spelling(spelling: str) -> None:
    """Every spelling of one ISBN maps to one cache key."""
    assert isbn_key(spelling) == isbn_key("9780441013593")


def test_author_warm_key_is_the_plain_name_search_key() -> None:
    """The warmer's `inauthor:` search shares the key of a plain name query."""
    from bookmeta import author_warm_key

    assert author_warm_key("  Frank   HERBERT ") == search_key(
        "author", "Frank Herbert", max_results=40, lang="en", translations=False
    )
