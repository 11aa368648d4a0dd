"""The warmer's HTTP API through the harness: auth, limits, errors, dashboard, health."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from test_warmer_support import (
    AUTH,
    BATCH_CRON,
    VERIFY_CRON,
    WARMER,
    get_json,
    library,
    make_system,
    mock_upstreams,
    multipart,
    tick,
    upload,
    warmer_kv,
)

from bookmeta import use_clocks
from harness import FakeController, System

# One book the fixture providers know, one author none of them lists.
UNLISTED = b"title,author,isbn13\nDune,,9780441013593\nNo Such Book,Nobody Ever Wrote This,\n"


def stored(system: System) -> tuple[dict[str, str], list[str]]:
    """What the warmer has in KV and R2 (libraries/ only)."""
    bucket = system.r2(WARMER, "LIBRARY_DATA")
    return warmer_kv(system).dump(), [k for k in bucket.items if k.startswith("libraries/")]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"authorization": "Bearer wrong"}, id="wrong-token"),
        pytest.param({"authorization": "Basic dA=="}, id="wrong-scheme"),
    ],
)
async def test_import_without_the_token_is_401_and_stores_nothing(headers: dict[str, str]) -> None:
    """No valid bearer token: 401 and no KV or R2 writes."""
    system = make_system()
    resp = await system.fetch(
        WARMER,
        "/libraries",
        method="POST",
        headers={"content-type": "text/csv", **headers},
        body=library("generic.csv"),
    )
    assert resp.status == 401
    assert json.loads(await resp.text())["error"]["code"] == "unauthorized"
    assert stored(system) == ({}, [])


async def test_writes_are_refused_when_no_token_is_configured() -> None:
    """An unset WARMER_ADMIN_TOKEN disables writes instead of opening them."""
    system = System(secrets={"ISBNDB_API_KEY": "k"})
    resp = await system.fetch(
        WARMER, "/libraries", method="POST", headers=AUTH, body=library("generic.csv")
    )
    assert resp.status == 401
    assert "not configured" in json.loads(await resp.text())["error"]["message"]
    assert stored(system) == ({}, [])


async def test_import_stores_the_source_and_answers_201_with_a_summary() -> None:
    """The CSV body is kept in R2 as sent and the summary lists ISBNs, authors and problems."""
    system = make_system()
    status, body = await upload(system, library("goodreads_24.csv"))
    assert status == 201
    assert body["format"] == "goodreads"
    assert body["validIsbns"] == 12
    assert body["rowsWithoutIsbn"]["count"] == 5
    assert body["authors"] == 12
    assert body["problems"][0]["line"] == 20
    source = system.r2(WARMER, "LIBRARY_DATA").items[f"libraries/{body['id']}/source.csv"]
    assert source.body == library("goodreads_24.csv")
    status, progress = await get_json(system, body["progress"])
    assert (status, progress["percent"], progress["status"]) == (200, 0.0, "queued")


async def test_import_keeps_a_report_of_the_rows_it_skipped() -> None:
    """import.json beside the upload: the problems and the lines without an ISBN, as in the
    import's answer (the library's page lists them); 1,000 lines of each are kept."""
    system = make_system()
    _, summary = await upload(system, library("goodreads_24.csv"))
    bucket = system.r2(WARMER, "LIBRARY_DATA").items
    report = json.loads(bucket[f"libraries/{summary['id']}/import.json"].body)
    assert report == {
        "variant": "24 columns",
        "rows": 18,
        "problems": summary["problems"],
        "problemsTotal": 1,
        "rowsWithoutIsbn": {"count": 5, "lines": [17, 18, 20, 21, 23]},
    }
    many = b"title,author\n" + b"".join(b"Book %d,Author %d\n" % (n, n % 7) for n in range(1200))
    _, summary = await upload(system, many)
    report = json.loads(bucket[f"libraries/{summary['id']}/import.json"].body)
    assert report["rowsWithoutIsbn"]["count"] == 1200
    assert report["rowsWithoutIsbn"]["lines"] == list(range(2, 1002))


async def test_multipart_upload_keeps_the_filename() -> None:
    """A browser form upload is parsed and the file part stored."""
    system = make_system()
    payload, content_type = multipart("my library.tsv", library("librarything.tsv"))
    status, body = await upload(system, payload, content_type=content_type)
    assert status == 201
    assert (body["format"], body["filename"]) == ("librarything", "my library.tsv")


@pytest.mark.parametrize("form", [True, False], ids=["multipart", "query"])
async def test_bidi_controls_never_reach_the_shown_filename(form: bool) -> None:
    """A filename with U+202E (shows reversed) is stored and shown without format characters."""
    system = make_system()
    name = "\u202evsc.txt\u2066x\u2069.csv"
    if form:
        payload, content_type = multipart(name, library("generic.csv"))
        status, body = await upload(system, payload, content_type=content_type)
    else:
        resp = await system.fetch(
            WARMER,
            "/libraries?filename=" + quote(name),
            method="POST",
            headers={**AUTH, "content-type": "text/csv"},
            body=library("generic.csv"),
        )
        status, body = resp.status, json.loads(await resp.text())
    assert status == 201
    assert body["filename"] == "vsc.txtx.csv"
    _, listing = await get_json(system, "/libraries")
    assert listing["libraries"][0]["filename"] == "vsc.txtx.csv"
    page = await (await system.fetch(WARMER, "/", headers=AUTH)).text()
    assert "\u202e" not in page
    assert "\u2066" not in page


async def test_upload_over_the_size_limit_is_413() -> None:
    """MAX_UPLOAD_BYTES caps the body."""
    system = make_system(MAX_UPLOAD_BYTES="100")
    status, body = await upload(system, library("goodreads_24.csv"))
    assert status == 413
    assert body["error"]["code"] == "too_large"
    assert stored(system) == ({}, [])


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        pytest.param(b'{"a": 1}', "application/json", 415, id="json-type"),
        pytest.param(b'{"a": 1}', "text/csv", 415, id="json-body"),
        pytest.param(b"foo,bar\n1,2\n", "text/csv", 422, id="unknown-header"),
        pytest.param(b"", "text/csv", 400, id="empty"),
        pytest.param(b"a\xff\xfe", "text/csv", 400, id="invalid-utf8"),
    ],
)
async def test_bad_uploads_are_4xx_json(data: bytes, content_type: str, status: int) -> None:
    """Rejected uploads answer the error shape and store nothing."""
    system = make_system()
    got, body = await upload(system, data, content_type=content_type)
    assert got == status
    assert set(body["error"]) >= {"code", "message"}
    assert stored(system) == ({}, [])


async def test_unknown_library_is_404_json() -> None:
    """Progress and warm of a missing id are 404 not_found."""
    system = make_system()
    status, body = await get_json(system, "/libraries/20990101t000000-abcdef")
    assert (status, body["error"]["code"]) == (404, "not_found")
    resp = await system.fetch(WARMER, "/libraries/nope/warm", method="POST", headers=AUTH)
    assert resp.status == 404


async def test_dashboard_escapes_user_provided_names() -> None:
    """A hostile filename shows as text, never as markup; CSP forbids inline script."""
    system = make_system()
    evil = '<img src=x onerror=alert(1)>"'
    await upload(system, library("generic.csv"), headers={}, content_type="text/csv")
    resp = await system.fetch(
        WARMER,
        f"/libraries?filename={evil}",
        method="POST",
        headers={**AUTH, "content-type": "text/csv"},
        body=library("generic.csv"),
    )
    assert resp.status == 201
    page = await system.fetch(WARMER, "/", headers=AUTH)
    html = await page.text()
    assert page.status == 200
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;&quot;" in html
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert html.count("<progress") == 4, "books and authors, per library"
    script = await system.fetch(WARMER, "/dashboard.js")
    assert script.headers["content-type"].startswith("text/javascript")


async def test_health_and_metrics() -> None:
    """Health names bindings and whether the token is set; metrics count imports."""
    system = make_system()
    await upload(system, library("generic.csv"))
    status, health = await get_json(system, "/health")
    assert status == 200
    assert health["ok"] is True
    assert health["adminTokenConfigured"] is True
    assert health["settings"]["maxSubrequests"] == 45
    _, metrics = await get_json(system, "/metrics")
    assert metrics["counters"]["import.libraries"] == 1


async def test_unknown_cron_does_nothing() -> None:
    """A cron the worker does not know is logged and ignored."""
    system = make_system()
    module = system.module(WARMER)
    entry = module.Default(None, system.envs[WARMER])
    with use_clocks(system.clocks):
        await entry.scheduled(FakeController("5 4 * * *", 0.0), system.envs[WARMER], None)
    assert warmer_kv(system).dump() == {}


async def test_a_malformed_var_is_500_config_error_on_http_and_logged_by_the_crons(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """WARM_MAX_SUBREQUESTS=10: routes answer 500 config_error naming the var; crons log it."""
    system = make_system(WARM_MAX_SUBREQUESTS="10")
    for method, path, headers in (
        ("GET", "/libraries", {}),
        ("GET", "/", {}),
        ("POST", "/libraries", {**AUTH, "content-type": "text/csv"}),
        ("GET", "/health", {}),
    ):
        body = library("generic.csv") if method == "POST" else None
        resp = await system.fetch(WARMER, path, method=method, headers=headers, body=body)
        error = json.loads(await resp.text())["error"]
        assert (resp.status, error["code"], error["var"]) == (
            500,
            "config_error",
            "WARM_MAX_SUBREQUESTS",
        ), path
    capsys.readouterr()
    await system.scheduled(WARMER, BATCH_CRON)  # must not raise
    await system.scheduled(WARMER, VERIFY_CRON)
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    errors = [e for e in events if e["event"] == "cron.config_error"]
    assert [e["cron"] for e in errors] == [BATCH_CRON, VERIFY_CRON]
    assert all(e["level"] == "error" and e["var"] == "WARM_MAX_SUBREQUESTS" for e in errors)


async def test_read_routes_without_the_token_show_aggregate_progress_only() -> None:
    """/, /libraries and /libraries/{id} hide the filename, ISBNs and author names without
    the token (a reading list is personal); with it they show the full view."""
    system = make_system()
    with mock_upstreams():
        payload, content_type = multipart("alice-reading-list.csv", UNLISTED)
        _, summary = await upload(system, payload, content_type=content_type)
        await tick(system)
    job = summary["id"]
    secrets = ("alice-reading-list", "Nobody Ever Wrote This", "9780441013593", "Frank Herbert")
    public = {}
    for path in ("/", "/libraries", f"/libraries/{job}"):
        resp = await system.fetch(WARMER, path)
        text = await resp.text()
        assert resp.status == 200, path
        assert not [s for s in secrets if s in text], (path, text)
        public[path] = text
    view = json.loads(public[f"/libraries/{job}"])
    assert set(view) == {
        "id", "status", "format", "total", "done", "failed", "remaining", "percent",
        "units", "lastRun", "rate", "eta",
    }  # fmt: skip
    assert (view["status"], view["total"], view["done"], view["failed"]) == ("done", 2, 1, 1)
    assert view["lastRun"] == {"stoppedBy": "complete", "detail": ""}
    assert json.loads(public["/libraries"])["libraries"] == [view]
    assert '<progress id="bar-' + job + '-items" max="2" value="2"' in public["/"]
    _, full = await get_json(system, f"/libraries/{job}")  # with the token
    assert full["filename"] == "alice-reading-list.csv"
    assert full["failures"][0]["item"] == "Nobody Ever Wrote This"
    _, listing = await get_json(system, "/libraries")
    assert listing["libraries"] == [full]
    page = await system.fetch(WARMER, "/", headers=AUTH)
    assert "alice-reading-list.csv" in await page.text()


def test_a_transient_error_detail_is_cut_to_its_first_clause_without_the_token() -> None:
    """A provider's message (which may quote an author) stays out of the public view."""
    from warmer_app.jobs import public_progress

    view = {"id": "x", "lastRun": {"stoppedBy": "transient_error", "detail": "proxy search "
            "answered 503: no luck with 'Frank Herbert'", "at": 1.0}}  # fmt: skip
    assert public_progress(view)["lastRun"] == {
        "stoppedBy": "transient_error",
        "detail": "proxy search answered 503",
    }


async def test_an_isbn_chunk_above_the_proxy_limit_is_a_config_error() -> None:
    """WARM_ISBN_CHUNK over what warm_isbns accepts is refused as configuration, not per item."""
    system = make_system(WARM_ISBN_CHUNK="250")
    resp = await system.fetch(
        WARMER,
        "/libraries",
        method="POST",
        headers={**AUTH, "content-type": "text/csv"},
        body=library("generic.csv"),
    )
    body = json.loads(await resp.text())
    assert (resp.status, body["error"]["code"], body["error"]["var"]) == (
        500,
        "config_error",
        "WARM_ISBN_CHUNK",
    )
