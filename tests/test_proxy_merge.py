"""Merging editions from several providers by ISBN-13, and ranking (proxy_app.merge)."""

from __future__ import annotations

from proxy_app.merge import merge
from proxy_app.model import Edition, Identifier
from proxy_app.volumes import envelope, keep_language, to_item

DUNE = "9780441013593"
MESSIAH = "9780593098233"


def test_same_isbn_merges_by_the_rules() -> None:
    """Union of identifiers, shorter title, longest authors, earliest date, first description."""
    g = Edition(
        ("google",),
        "Dune (Dune Chronicles, Book 1)",
        isbn13=DUNE,
        volume_id="gid",
        authors=("Frank Herbert",),
        published_date="2005-08-02",
        description="",
        identifiers=(Identifier("ISBN_13", DUNE), Identifier("OTHER", "UOM:1")),
        image_links={"thumbnail": "https://g/t"},
    )
    i = Edition(
        ("isbndb",),
        "Dune",
        isbn13=DUNE,
        authors=("Frank Herbert", "Brian Herbert"),
        published_date="1990",
        description="isbndb synopsis",
        identifiers=(Identifier("ISBN_13", DUNE), Identifier("ISBN_10", "0441013597")),
        image_links={"thumbnail": "https://i/t"},
        page_count=535,
    )
    o = Edition(("openlibrary",), "Dune", isbn13=DUNE, published_date="1965", page_count=528)
    [merged] = merge({"google": [g], "isbndb": [i], "openlibrary": [o]})
    assert merged.providers == ("google", "isbndb", "openlibrary")
    assert merged.title == "Dune"
    assert merged.authors == ("Frank Herbert", "Brian Herbert")
    assert merged.published_date == "1965"
    assert merged.description == "isbndb synopsis"
    assert merged.image_links == {"thumbnail": "https://g/t"}
    assert merged.page_count == 535
    assert merged.volume_id == "gid"
    assert [x.type for x in merged.identifiers] == ["ISBN_13", "ISBN_10", "OTHER"]


def test_different_isbns_stay_apart_and_unkeyed_editions_are_kept() -> None:
    """Editions with other ISBNs, or none, are separate items."""
    results = {
        "google": [Edition(("google",), "Dune", isbn13=DUNE), Edition(("google",), "Notes")],
        "openlibrary": [Edition(("openlibrary",), "Dune Messiah", isbn13=MESSIAH)],
    }
    merged = merge(results)
    assert [m.title for m in merged] == ["Dune", "Dune Messiah", "Notes"]


def test_exact_isbn_match_ranks_first() -> None:
    """The asked ISBN comes first whatever position its providers gave it."""
    results = {
        "google": [
            Edition(("google",), "Dune Messiah", isbn13=MESSIAH),
            Edition(("google",), "Dune", isbn13=DUNE),
        ]
    }
    assert [m.isbn13 for m in merge(results, exact_isbn13=DUNE)] == [DUNE, MESSIAH]
    assert [m.isbn13 for m in merge(results)] == [MESSIAH, DUNE]


def test_ranking_interleaves_providers_by_position() -> None:
    """Items rank by their best position in any provider list, ties by provider priority."""
    results = {
        "google": [Edition(("google",), "A", isbn13=DUNE)],
        "openlibrary": [
            Edition(("openlibrary",), "B", isbn13=MESSIAH),
            Edition(("openlibrary",), "A", isbn13=DUNE),
        ],
    }
    merged = merge(results)
    assert [m.title for m in merged] == ["A", "B"]
    assert merged[0].providers == ("google", "openlibrary")


def test_openlibrary_work_folds_into_an_edition_it_lists() -> None:
    """A work whose ISBN list contains an edition's ISBN joins it; the edition's date stays."""
    edition = Edition(("google",), "Dune", isbn13=DUNE, published_date="2005-08-02")
    work = Edition(
        ("openlibrary",),
        "Dune",
        published_date="1965",
        work_isbn13s=frozenset({"9780340960196", DUNE}),
    )
    [merged] = merge({"google": [edition], "openlibrary": [work]})
    assert merged.isbn13 == DUNE
    assert merged.published_date == "2005-08-02"
    assert merged.providers == ("google", "openlibrary")
    assert Identifier("ISBN_13", "9780340960196") not in merged.identifiers


def test_a_folded_work_only_fills_what_the_edition_lacks() -> None:
    """Google's 2005 Dune and the Open Library work: the edition's authors and date stand."""
    edition = Edition(
        ("google",),
        "Dune",
        isbn13=DUNE,
        authors=("Frank Herbert",),
        published_date="2005-08-02",
        publisher="Ace",
        language="en",
    )
    work = Edition(
        ("openlibrary",),
        "Dune",
        subtitle="A Novel",
        authors=("Frank Herbert", "Brian Herbert", "Kevin J. Anderson"),
        published_date="1965",
        publisher="Chilton Books",
        page_count=604,
        categories=("Science fiction",),
        image_links={"thumbnail": "https://covers/w-M.jpg"},
        language="fr",
        work_isbn13s=frozenset({DUNE}),
    )
    [merged] = merge({"google": [edition], "openlibrary": [work]})
    assert merged.authors == ("Frank Herbert",)
    assert merged.published_date == "2005-08-02"
    assert merged.publisher == "Ace"
    assert merged.language == "en"
    assert merged.subtitle == "A Novel"
    assert merged.categories == ("Science fiction",)
    assert merged.image_links == {"thumbnail": "https://covers/w-M.jpg"}
    assert merged.page_count is None  # a median over editions is no edition's page count


def test_first_publish_year_is_never_an_editions_date() -> None:
    """An edition without a date stays without one: the work's first year is not its date."""
    edition = Edition(("google",), "Dune", isbn13=DUNE)
    work = Edition(
        ("openlibrary",),
        "Dune",
        authors=("Frank Herbert",),
        published_date="1965",
        work_isbn13s=frozenset({DUNE}),
    )
    [merged] = merge({"google": [edition], "openlibrary": [work]})
    assert merged.published_date is None
    assert merged.authors == ("Frank Herbert",)


def test_a_work_standing_alone_claims_no_editions_isbn() -> None:
    """An unfolded work is a work: no ISBN of one of its editions (maybe a translation)."""
    french = "9782266233200"
    work = Edition(
        ("openlibrary",),
        "Dune",
        isbn13=french,  # what parse_doc used to set: the first ISBN listed
        published_date="1965",
        identifiers=(Identifier("ISBN_13", french), Identifier("OTHER", "OL893415W")),
        work_isbn13s=frozenset({french, DUNE}),
    )
    [merged] = merge({"openlibrary": [work]})
    assert merged.isbn13 is None
    assert merged.identifiers == (Identifier("OTHER", "OL893415W"),)
    assert merged.published_date == "1965"
    assert to_item(merged)["id"] == "openlibrary:Dune"


def test_language_filter_drops_unknown_languages() -> None:
    """includeTranslations=false keeps only the language asked for: unknown is not it."""
    editions = [
        Edition(("google",), "Dune", language="en"),
        Edition(("google",), "Dune FR", language="fr"),
        Edition(("openlibrary",), "Dune ?"),
    ]
    assert [e.title for e in keep_language(editions, "en")] == ["Dune"]


def test_items_follow_the_google_volume_shape() -> None:
    """Items carry id, volumeInfo with Google's names (absent values left out) and providers."""
    item = to_item(
        Edition(("isbndb",), "Dune", isbn13=DUNE, authors=("Frank Herbert",), page_count=10)
    )
    assert item == {
        "id": f"isbn:{DUNE}",
        "volumeInfo": {"title": "Dune", "authors": ["Frank Herbert"], "pageCount": 10},
        "providers": ["isbndb"],
    }
    body = envelope([item], cache="miss", failed=["google"])
    assert body["kind"] == "books#volumes"
    assert body["totalItems"] == 1
    assert body["failedProviders"] == ["google"]
