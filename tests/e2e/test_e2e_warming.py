"""End-to-end: Goodreads CSV uploads warmed by the queue, then served from the proxy's cache."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bookmeta import isbn_key

if TYPE_CHECKING:  # tests/e2e/conftest.py: a conftest is not importable by name at runtime
    from conftest import WorkersSession

pytestmark = pytest.mark.e2e

CRON = "*/15 * * * *"
MAX_TICKS = 30
GOODREADS_HEADER = [
    "Book Id", "Title", "Author", "Author l-f", "Additional Authors", "ISBN", "ISBN13",
    "My Rating", "Average Rating", "Publisher", "Binding", "Number of Pages", "Year Published",
    "Original Publication Year", "Date Read", "Date Added", "Bookshelves",
    "Bookshelves with positions", "Exclusive Shelf", "My Review", "Spoiler", "Private Notes",
    "Read Count", "Owned Copies",
]  # fmt: skip
# (isbn13, isbn10, title, author) from devtools/fixtures/catalogue.json; none of them is touched
# by test_e2e_workers.py, so they are cold until the warmer warms them. Tom Sawyer is missing
# from the fixture's Google Books, so the proxy's fallbacks are warmed too.
LIBRARY = [
    ("9780441478125", "0441478123", "The Left Hand of Darkness", "Ursula K. Le Guin"),
    ("9780441569595", "0441569595", "Neuromancer", "William Gibson"),
    ("9780451524935", "0451524934", "1984", "George Orwell"),
    ("9780451526342", "0451526341", "Animal Farm", "George Orwell"),
    ("9780451526533", "0451526538", "The Adventures of Tom Sawyer", "Mark Twain"),
]


def goodreads_export() -> str:
    """A small Goodreads "Export Library" CSV of LIBRARY (ISBNs as ``="..."`` cells)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(GOODREADS_HEADER)
    for n, (isbn13, isbn10, title, author) in enumerate(LIBRARY):
        first, _, last = author.rpartition(" ")
        writer.writerow(
            [
                str(1000 + n), title, author, f"{last}, {first}", "", f'="{isbn10}"',
                f'="{isbn13}"', "4", "4.10", "Ace", "Paperback", "300", "2000", "1960", "",
                "2024/01/02", "", "", "read", "", "", "", "1", "0",
            ]
        )  # fmt: skip
    return out.getvalue()


def library_id(body: dict[str, Any]) -> str:
    """The new library's id from the POST /libraries answer."""
    for holder in (body, body.get("library") or {}):
        for key in ("id", "libraryId"):
            if isinstance(holder.get(key), str) and holder[key]:
                return str(holder[key])
    raise AssertionError(f"no library id in {body!r}")


def progress_percent(body: dict[str, Any]) -> float:
    """Percent done (0-100) from GET /libraries/{id}: ``progress.percent``, or ``percent``."""
    for holder in (body, body.get("library") or {}, body.get("job") or {}):
        progress = holder.get("progress")
        if isinstance(progress, dict) and isinstance(progress.get("percent"), int | float):
            return float(progress["percent"])
        if isinstance(holder.get("percent"), int | float):
            return float(holder["percent"])
        if isinstance(progress, int | float) and not isinstance(progress, bool):
            return float(progress)
    raise AssertionError(f"no progress percent in {body!r}")


def _tiers(e2e: WorkersSession) -> dict[str, Any]:
    keys = [isbn_key(isbn13) for isbn13, *_ in LIBRARY]
    status = e2e.rpc("proxy", "cache_status", keys)
    assert "error" not in status, status
    return {key: status["keys"][key]["tier"] for key in keys}


def test_upload_requires_the_admin_token(e2e: WorkersSession) -> None:
    """POST /libraries without the bearer token is refused with 401 and nothing is stored."""
    response = e2e.warmer(
        "POST", "/libraries", content=goodreads_export(), headers={"content-type": "text/csv"}
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"


def test_upload_warm_by_cron_then_served_from_cache(e2e: WorkersSession) -> None:
    """Upload -> cron ticks to 100% -> every ISBN is a proxy cache hit with no upstream call."""
    assert set(_tiers(e2e).values()) == {None}, "the library's ISBNs must start cold"

    upload = e2e.upload(goodreads_export())
    assert upload.status_code in (200, 201, 202), upload.text
    lib = library_id(upload.json())

    # The queue warms it in the background (retries wait out their backoff in real time);
    # a cron tick each poll re-drives anything due and must succeed too.
    percent = -1.0
    for _ in range(MAX_TICKS):
        status = e2e.warmer("GET", f"/libraries/{lib}", headers=e2e.auth)
        assert status.status_code == 200, status.text
        percent = progress_percent(status.json())
        if percent >= 100:
            break
        tick = e2e.scheduled(CRON)
        assert tick.status_code == 200, f"cron tick failed: {tick.text}\n{e2e.log_tail()}"
        time.sleep(3.0)
    assert percent == 100, f"still at {percent}% after {MAX_TICKS} polls: {status.text}"

    tiers = _tiers(e2e)
    assert all(tier in ("kv", "r2") for tier in tiers.values()), tiers

    before = e2e.upstream_calls()
    for isbn13, _, title, _ in LIBRARY:
        response = e2e.proxy("search/auto", {"q": isbn13, "maxResults": 1})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["cache"] != "miss", (isbn13, body["cache"])
        assert response.headers.get("x-cache", body["cache"]) != "miss"
        assert [item["volumeInfo"]["title"] for item in body["items"]] == [title]
    assert e2e.upstream_calls() == before, "cache hits must not call the upstreams"


# 20 books of the catalogue that only this test uses ("Queue Shelf", one author each).
QUEUE_LIBRARY = [
    (b["isbn13"], b["isbn10"], b["title"], b["authors"][0])
    for b in json.loads(
        (Path(__file__).resolve().parents[2] / "devtools/fixtures/catalogue.json").read_text()
    )["books"]
    if b["title"].startswith("Queue Shelf")
]
QUEUE_DEADLINE_S = 60.0


def test_a_20_book_upload_is_warm_within_60_s_with_no_cron(e2e: WorkersSession) -> None:
    """Upload 20 books: the warming queue alone takes them to 100 % within 60 s of the
    upload (no cron fired), and every ISBN is then a proxy cache hit."""
    assert len(QUEUE_LIBRARY) == 20
    keys = [isbn_key(isbn13) for isbn13, *_ in QUEUE_LIBRARY]
    cold = e2e.rpc("proxy", "cache_status", keys)
    assert all(cold["keys"][k]["tier"] is None for k in keys), "the 20 books must start cold"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["Title", "Author", "ISBN13"])
    for isbn13, _, title, author in QUEUE_LIBRARY:
        writer.writerow([title, author, isbn13])
    started = time.monotonic()
    upload = e2e.upload(out.getvalue())
    assert upload.status_code == 201, upload.text
    lib = library_id(upload.json())
    percent = -1.0
    while time.monotonic() - started < QUEUE_DEADLINE_S:
        status = e2e.warmer("GET", f"/libraries/{lib}", headers=e2e.auth)
        assert status.status_code == 200, status.text
        percent = progress_percent(status.json())
        if percent >= 100:
            break
        time.sleep(1.0)
    took = time.monotonic() - started
    assert percent == 100, f"{percent}% after {took:.0f} s: {status.text}\n{e2e.log_tail()}"
    body = status.json()
    assert body["done"] + body["failed"] == body["total"] == 40, body  # 20 ISBNs, 20 authors
    warm = e2e.rpc("proxy", "cache_status", keys)
    assert all(warm["keys"][k]["tier"] in ("kv", "r2") for k in keys), warm
