"""Content negotiation of the read routes: HTML only when Accept ranks it above JSON."""

from __future__ import annotations

import pytest

from warmer_app.negotiate import prefers_html, quality

CHROME = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        pytest.param(None, False, id="absent"),
        pytest.param("", False, id="empty"),
        pytest.param("*/*", False, id="curl"),
        pytest.param("application/json", False, id="json"),
        pytest.param("application/*", False, id="application-any"),
        pytest.param("text/plain", False, id="text-plain"),
        pytest.param("application/json, text/html", False, id="tie-json-default"),
        pytest.param("text/html;q=0.5, application/json", False, id="json-ranked-higher"),
        pytest.param("text/html;q=0", False, id="html-refused"),
        pytest.param("text/html, */*;q=0.1", True, id="html-over-any"),
        pytest.param("text/html", True, id="html"),
        pytest.param("TEXT/HTML", True, id="case"),
        pytest.param("text/*", True, id="text-any"),
        pytest.param("application/xhtml+xml", True, id="xhtml"),
        pytest.param("text/html, application/json;q=0.9", True, id="html-ranked-higher"),
        pytest.param(CHROME, True, id="chrome"),
        pytest.param(FIREFOX, True, id="firefox"),
        pytest.param("text/html;q=abc", False, id="bad-q-ignored"),
        pytest.param("text/html;q=2", False, id="q-out-of-range-ignored"),
        pytest.param("html, /, */html, ;;;", False, id="garbage"),
        pytest.param(",".join(["x/y"] * 100) + ",text/html", False, id="too-many-ranges"),
    ],
)
def test_html_only_when_accept_ranks_it_above_json(accept: str | None, html: bool) -> None:
    """Browsers get HTML; everything else, JSON (the default)."""
    assert prefers_html(accept) is html


def test_the_most_specific_range_sets_a_types_quality() -> None:
    """text/html;q=0.2 wins over */* for text/html, even when */* comes first."""
    assert quality("*/*, text/html;q=0.2", "text/html") == 0.2
    assert quality("text/*;q=0.4, */*;q=0.9", "text/html") == 0.4
    assert quality("text/*;q=0.4, */*;q=0.9", "application/json") == 0.9
