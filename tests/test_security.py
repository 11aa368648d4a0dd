"""Security: secrets never leak, writes need the token (compared in constant time), and each
worker gets exactly the bindings of the matrix, in the configs and at runtime."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import respx
from test_warmer_support import BATCH_CRON, VERIFY_CRON, _google, _isbndb, _openlibrary, library
from workers import CHUNK_BYTES
from workers import Request as RuntimeRequest

from harness import (
    FakeDurableObjectNamespace,
    FakeKV,
    FakeR2,
    FakeSecret,
    FakeServiceBinding,
    System,
)

ISBNDB_KEY = "isbndb-K3Y-7f3a9c1e"
GOOGLE_KEY = "g00gle-K3Y-b41e2077"
ADMIN_TOKEN = "warmer-T0KEN-5d8e11aa"
SECRETS = {
    "ISBNDB_API_KEY": ISBNDB_KEY,
    "GOOGLE_BOOKS_API_KEY": GOOGLE_KEY,
    "WARMER_ADMIN_TOKEN": ADMIN_TOKEN,
}
ISBNDB, PROXY, WARMER = "isbndb_worker", "books_api_proxy", "cache_warmer"
AUTH = {"authorization": f"Bearer {ADMIN_TOKEN}"}
DUNE = "9780441013593"
REFUSED_401 = "9780593098233"  # ISBNdb and Google answer 401 for this one
REFUSED_403 = "9780441104024"  # ... and 403 for this one
ENVS: list[str | None] = [None, "staging", "production", "fixtures"]


@contextmanager
def upstreams() -> Iterator[list[httpx.Request]]:
    """Fixture providers that echo the secrets in their 401/403 bodies; every request kept."""
    sent: list[httpx.Request] = []

    def refusing(handler: Any) -> Any:
        def answer(request: httpx.Request) -> httpx.Response:
            sent.append(request)
            url = str(request.url)
            if REFUSED_401 in url:
                return httpx.Response(401, text=f"bad key {ISBNDB_KEY} {GOOGLE_KEY}")
            if REFUSED_403 in url:
                return httpx.Response(403, json={"error": {"message": f"no plan {GOOGLE_KEY}"}})
            response: httpx.Response = handler(request)
            return response

        return answer

    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        router.route(host="api2.isbndb.com").mock(side_effect=refusing(_isbndb))
        router.route(host="www.googleapis.com").mock(side_effect=refusing(_google))
        router.route(host="openlibrary.org").mock(side_effect=refusing(_openlibrary))
        yield sent


async def drive_everything(system: System) -> list[str]:
    """Every endpoint of the three workers, successes and failures; what came back."""
    seen: list[str] = []

    async def http(worker: str, path: str, **kwargs: Any) -> Any:
        resp = await system.fetch(worker, path, **kwargs)
        text = await resp.text()
        seen.append(text)
        seen.extend(f"{k}: {v}" for k, v in resp.headers.items())
        return resp.status, text

    async def rpc(worker: str, method: str, *args: Any) -> None:
        seen.append(repr(await system.rpc(worker, method, *args)))

    for isbn in (DUNE, REFUSED_401, REFUSED_403, "not-an-isbn"):
        await http(ISBNDB, f"/book/{isbn}")
        await http(PROXY, f"/search/isbn?isbn={isbn}")
        await rpc(ISBNDB, "book", isbn)
        await rpc(PROXY, "search_isbn", isbn)
    for path in ("/author/Frank%20Herbert", "/author/%00", "/health", "/metrics", "/nope"):
        await http(ISBNDB, path)
    for body in (json.dumps({"isbns": [DUNE, REFUSED_401]}), "not json"):
        await http(ISBNDB, "/books", method="POST", body=body)
    await rpc(ISBNDB, "books", [DUNE, REFUSED_403])
    await rpc(ISBNDB, "author", "Frank Herbert", 1, 5, "en")
    await rpc(ISBNDB, "health")
    await rpc(ISBNDB, "metrics")
    for path in (
        "/search/auto?q=Frank%20Herbert",
        "/search/author?q=Herbert",
        "/search/title?q=Dune",
        f"/search/auto?q={REFUSED_401}",
        "/search/auto?q=%00",
        "/health",
        "/metrics",
    ):
        await http(PROXY, path)
    await http(PROXY, "/search/auto?q=dune", method="OPTIONS", headers={"origin": "https://x.io"})
    await rpc(PROXY, "search_auto", "Dune", 5, True, "en")
    await rpc(PROXY, "search_author", "Frank Herbert", 5, False, "en")
    await rpc(PROXY, "search_title", "Dune", 5, True, "en")
    await rpc(PROXY, "warm_isbns", [DUNE, REFUSED_401, REFUSED_403, "nope"])
    await rpc(PROXY, "cache_status", ["isbn:" + DUNE])
    await rpc(PROXY, "health")
    await rpc(PROXY, "metrics")
    csv = {**AUTH, "content-type": "text/csv"}
    status, text = await http(
        WARMER, "/libraries", method="POST", headers=csv, body=library("goodreads_24.csv")
    )
    assert status == 201
    job = json.loads(text)["id"]
    await http(WARMER, "/libraries", method="POST", headers={"content-type": "text/csv"}, body="x")
    bad_token = {"authorization": "Bearer nope", "content-type": "text/csv"}
    await http(WARMER, "/libraries", method="POST", headers=bad_token, body="x")
    await http(WARMER, "/libraries", method="POST", headers=csv, body=b"\x00\x01")
    for path in ("/", "/dashboard.js", "/libraries", f"/libraries/{job}", "/health", "/metrics"):
        await http(WARMER, path)
    await http(WARMER, f"/libraries/{job}", headers={"accept": "text/html"})
    await http(WARMER, f"/libraries/{job}", headers={**AUTH, "accept": "text/html"})
    await http(WARMER, f"/libraries/{job}/warm", method="POST", headers=AUTH)
    await http(WARMER, f"/libraries/{job}/warm", method="POST")
    await http(WARMER, f"/libraries/{job}/retry", method="POST", headers=AUTH)
    await http(WARMER, f"/libraries/{job}/retry", method="POST")
    await http(WARMER, "/debug/proxy/health", headers=AUTH)
    await http(WARMER, "/debug/isbndb/health", headers=AUTH)
    await http(WARMER, f"/debug/isbndb/book/{REFUSED_401}", headers=AUTH)
    await http(WARMER, "/debug/rpc/proxy/health", method="POST", headers=AUTH, body="[]")
    await http(WARMER, "/debug/rpc/isbndb/book", method="POST", headers=AUTH, body=f'["{DUNE}"]')
    await http(WARMER, "/debug/proxy/health")
    for _ in range(3):
        system.clock.advance(900)
        await system.scheduled(WARMER, BATCH_CRON)
    await system.scheduled(WARMER, VERIFY_CRON)
    return seen


async def test_secrets_never_leak_into_responses_logs_or_binding_traffic(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Every endpoint, success and error (upstream 401/403 too): no secret anywhere it
    should not be; the ISBNdb key only in ISBNdb's Authorization header, the Google key
    only in Google's ``key`` parameter."""
    caplog.set_level(logging.DEBUG)
    system = System(secrets=SECRETS)
    with upstreams() as sent:
        seen = await drive_everything(system)
    captured = capsys.readouterr()
    logs = [captured.out, captured.err, caplog.text, *(r.getMessage() for r in caplog.records)]
    assert captured.out.strip(), "the workers logged something to scan"
    traffic = [f"{t.target} {t.headers} {t.payload}" for t in system.traffic]
    stored = [json.dumps(system.kv_namespaces[ns].dump()) for ns in system.kv_namespaces]
    stored += [repr(o.body) for b in system.buckets.values() for o in b.items.values()]
    guard = "isbndb-biography-worker-production:IsbndbKeyGuard"
    names = system.objects.names(guard)
    assert names, "the key guard was asked"
    stored += [repr(names)]
    stored += [
        repr(system.objects.query(guard, str(n), "SELECT * FROM guard_state")) for n in names
    ]
    for secret in SECRETS.values():
        for text in [*seen, *logs, *traffic, *stored]:
            assert secret not in text
    assert any(r.url.host == "api2.isbndb.com" for r in sent)
    assert any(r.url.host == "www.googleapis.com" for r in sent)
    assert any(s in str(r.url) for r in sent for s in (REFUSED_401, REFUSED_403))
    for request in sent:
        auth = request.headers.get("authorization")
        params = dict(request.url.params)
        if request.url.host == "api2.isbndb.com":
            assert auth == ISBNDB_KEY
        else:
            assert auth is None
        if request.url.host == "www.googleapis.com":
            assert params.get("key") == GOOGLE_KEY
        else:
            assert "key" not in params
        others = {k: v for k, v in request.headers.items() if k != "authorization"}
        url_without_key = str(request.url.copy_remove_param("key"))
        for secret in SECRETS.values():
            assert secret not in url_without_key
            assert secret not in request.content.decode("latin-1")
            assert secret not in repr(others)


# -- write endpoints: the token -------------------------------------------------------------


WRITES = [
    pytest.param("POST", "/libraries", id="import"),
    pytest.param("POST", "/libraries/{job}/warm", id="warm-now"),
    pytest.param("POST", "/libraries/{job}/retry", id="retry-failed"),
    pytest.param("GET", "/debug/proxy/health", id="debug-forward"),
    pytest.param("POST", "/debug/rpc/proxy/warm_isbns", id="debug-rpc"),
]
BAD_TOKENS = [
    pytest.param({}, id="missing"),
    pytest.param({"authorization": ""}, id="empty-header"),
    pytest.param({"authorization": "Bearer "}, id="empty-token"),
    pytest.param({"authorization": ADMIN_TOKEN}, id="no-scheme"),
    pytest.param({"authorization": f"Basic {ADMIN_TOKEN}"}, id="basic-scheme"),
    pytest.param({"authorization": "Bearer wrong"}, id="wrong"),
    pytest.param({"authorization": f"Bearer X{ADMIN_TOKEN[1:]}"}, id="first-char-differs"),
    pytest.param({"authorization": f"Bearer {ADMIN_TOKEN[:-1]}Z"}, id="last-char-differs"),
    pytest.param({"authorization": f"Bearer {ADMIN_TOKEN[:-1]}"}, id="prefix"),
    pytest.param({"authorization": f"Bearer {ADMIN_TOKEN}x"}, id="longer"),
    pytest.param({"authorization": f"Bearer {ADMIN_TOKEN.upper()}"}, id="case-differs"),
    pytest.param({"authorization": f"Bearer {ADMIN_TOKEN}\u00e9"}, id="non-ascii"),
]


def snapshot(system: System) -> tuple[dict[str, dict[str, str]], dict[str, list[str]]]:
    """Everything stored in every KV namespace and R2 bucket."""
    kv = {ns: fake.dump() for ns, fake in system.kv_namespaces.items()}
    r2 = {name: sorted(bucket.items) for name, bucket in system.buckets.items()}
    return kv, r2


@pytest.mark.parametrize("headers", BAD_TOKENS)
@pytest.mark.parametrize(("method", "path"), WRITES)
async def test_writes_without_the_right_token_are_401_and_store_nothing(
    method: str, path: str, headers: dict[str, str]
) -> None:
    """Missing, malformed and wrong tokens (any length, any position) get 401; nothing stored."""
    system = System(secrets=SECRETS)
    with upstreams() as sent:
        resp = await system.fetch(
            WARMER,
            "/libraries",
            method="POST",
            headers={**AUTH, "content-type": "text/csv"},
            body=library("generic.csv"),
        )
        job = json.loads(await resp.text())["id"]
        before = snapshot(system)
        traffic = len(system.traffic)
        resp = await system.fetch(
            WARMER,
            path.format(job=job),
            method=method,
            headers={**headers, "content-type": "text/csv"},
            body=library("generic.csv") if method == "POST" else None,
        )
        body = json.loads(await resp.text())
    assert resp.status == 401
    assert body["error"]["code"] == "unauthorized"
    assert resp.headers["www-authenticate"] == "Bearer"
    assert snapshot(system) == before
    assert len(system.traffic) == traffic, "no binding call"
    assert sent == []


async def test_the_token_is_compared_with_hmac_compare_digest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check goes through hmac.compare_digest, for the right token and for wrong ones."""
    from warmer_app import auth

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    system = System(secrets=SECRETS)
    ok = await system.fetch(
        WARMER,
        "/libraries",
        method="POST",
        headers={**AUTH, "content-type": "text/csv"},
        body=library("generic.csv"),
    )
    assert ok.status == 201
    assert calls == [(ADMIN_TOKEN.encode(), ADMIN_TOKEN.encode())]
    for wrong in (f"X{ADMIN_TOKEN[1:]}", ADMIN_TOKEN[:3]):
        resp = await system.fetch(
            WARMER,
            "/libraries",
            method="POST",
            headers={"authorization": f"Bearer {wrong}", "content-type": "text/csv"},
            body=library("generic.csv"),
        )
        assert resp.status == 401
    assert [a for a, _ in calls[1:]] == [f"X{ADMIN_TOKEN[1:]}".encode(), ADMIN_TOKEN[:3].encode()]


# -- the binding matrix at runtime ------------------------------------------------------------

RUNTIME_MATRIX = {
    ISBNDB: {"services": set(), "kv": {"ISBNDB_CACHE"}, "r2": set(), "do": {"ISBNDB_GUARD"}},
    PROXY: {"services": {"ISBNDB_WORKER"}, "kv": {"CACHE"}, "r2": {"API_CACHE_COLD"}, "do": set()},
    WARMER: {
        "services": {"BOOKS_API_PROXY", "ISBNDB_WORKER"},
        "kv": {"WARMING_CACHE"},
        "r2": {"LIBRARY_DATA"},
        "do": {"LIBRARY_JOBS"},
    },
}


def _bindings(env: Any, kind: type) -> set[str]:
    return {name for name, value in vars(env).items() if isinstance(value, kind)}


@pytest.mark.parametrize("env", ENVS, ids=lambda e: e or "dev")
def test_runtime_envs_expose_only_the_matrix(env: str | None) -> None:
    """Through the harness, each worker's env holds exactly its bindings; the isbndb
    worker's holds nothing but its vars, its Secrets Store key, its key guard and KV."""
    system = System(secrets={"ISBNDB_API_KEY": ISBNDB_KEY}, env=env)
    for worker, matrix in RUNTIME_MATRIX.items():
        worker_env = system.envs[worker]
        assert _bindings(worker_env, FakeServiceBinding) == matrix["services"], worker
        assert _bindings(worker_env, FakeKV) == matrix["kv"], worker
        assert _bindings(worker_env, FakeR2) == matrix["r2"], worker
        assert _bindings(worker_env, FakeDurableObjectNamespace) == matrix["do"], worker
    isbndb_env = system.envs[ISBNDB]
    spec = system.specs[ISBNDB]
    bindings = set(RUNTIME_MATRIX[ISBNDB]["kv"] | RUNTIME_MATRIX[ISBNDB]["do"])
    assert set(vars(isbndb_env)) == set(spec.vars) | {"ISBNDB_API_KEY"} | bindings
    assert isinstance(isbndb_env.ISBNDB_API_KEY, FakeSecret)
    assert all(isinstance(vars(isbndb_env)[name], str) for name in spec.vars)
    for name in ("ISBNDB_WORKER", "BOOKS_API_PROXY", "CACHE", "WARMING_CACHE", "LIBRARY_DATA"):
        assert not hasattr(isbndb_env, name)


MIB = 1024 * 1024
BIG = b"x" * (11 * MIB)  # past the warmer's default MAX_UPLOAD_BYTES (10 MiB)
LYING = {"content-length": str(95 * MIB)}  # says 95 MB, as the probe sent


def refused(
    worker: str,
    method: str,
    path: str,
    status: int,
    *,
    id: str,
    headers: dict[str, str] | None = None,
    body: bytes = BIG,
) -> Any:
    """One request that must be refused from its method, route, headers and token alone."""
    return pytest.param(worker, method, path, headers or {}, body, status, id=id)


UNREAD = [
    refused(WARMER, "POST", "/libraries", 401, id="upload-without-token"),
    refused(WARMER, "POST", "/libraries", 401, headers=LYING, id="upload-95mb-without-token"),
    refused(
        WARMER, "POST", "/libraries", 413, headers={**AUTH, **LYING}, id="upload-declared-95mb"
    ),
    refused(
        WARMER,
        "POST",
        "/libraries",
        415,
        headers={**AUTH, "content-type": "application/zip"},
        id="upload-wrong-type",
    ),
    refused(WARMER, "POST", "/libraries/x/warm", 401, id="warm-without-token"),
    refused(WARMER, "POST", "/libraries/20260101t000000-abcdef/warm", 404, headers=AUTH, id="warm"),
    refused(WARMER, "PUT", "/health", 405, id="warmer-put-health"),
    refused(WARMER, "POST", "/nowhere", 404, id="warmer-unknown-route"),
    refused(WARMER, "POST", "/debug/rpc/proxy/health", 401, id="debug-rpc-without-token"),
    refused(WARMER, "POST", "/debug/proxy/health", 405, headers=AUTH, id="debug-forward-post"),
    refused(
        WARMER, "POST", "/debug/rpc/proxy/warm_isbns", 404, headers=AUTH, id="debug-rpc-hidden"
    ),
    refused(WARMER, "PUT", "/debug/rpc/proxy/health", 405, headers=AUTH, id="debug-rpc-put"),
    refused(PROXY, "POST", "/search/auto?q=dune", 405, id="proxy-post-search"),
    refused(PROXY, "PUT", "/health", 405, id="proxy-put-health"),
    refused(ISBNDB, "PUT", "/health", 405, id="isbndb-put-health"),
    refused(ISBNDB, "POST", "/books", 413, headers=LYING, id="isbndb-books-declared-95mb"),
    refused(ISBNDB, "POST", "/nowhere", 404, id="isbndb-unknown-route"),
]


@pytest.mark.parametrize(("worker", "method", "path", "headers", "body", "status"), UNREAD)
async def test_refused_requests_are_answered_without_reading_the_body(
    worker: str, method: str, path: str, headers: dict[str, str], body: bytes, status: int
) -> None:
    """Method, route, token, type and Content-Length refusals come before reading one byte."""
    system = System(secrets=SECRETS)
    request = RuntimeRequest(
        f"https://{worker}.test{path}", method=method, headers=headers, body=body
    )
    resp = await system.send(worker, request)
    assert resp.status == status, await resp.text()
    assert json.loads(await resp.text())["error"]["code"]
    assert (request.bytes_read, request.body_used) == (0, False)


@pytest.mark.parametrize(
    ("worker", "path", "headers", "limit"),
    [
        pytest.param(WARMER, "/libraries", AUTH, 10 * MIB, id="warmer-upload"),
        pytest.param(ISBNDB, "/books", {}, 256 * 1024, id="isbndb-books"),
        pytest.param(WARMER, "/debug/rpc/proxy/health", AUTH, 256 * 1024, id="warmer-debug-rpc"),
    ],
)
async def test_a_body_without_a_length_is_cut_at_the_limit(
    worker: str, path: str, headers: dict[str, str], limit: int
) -> None:
    """A streamed body past its route's limit is a 413 after at most one chunk more than that."""
    system = System(secrets=SECRETS)
    request = RuntimeRequest(
        f"https://{worker}.test{path}", method="POST", headers=headers, body=BIG
    )
    resp = await system.send(worker, request)
    error = json.loads(await resp.text())["error"]
    assert (resp.status, error["code"], error["limit"]) == (413, "too_large", limit)
    assert limit < request.bytes_read <= limit + CHUNK_BYTES


SNIFFABLE = [
    pytest.param(WARMER, "GET", "/libraries/%3Cscript%3Ealert(1)%3C%2Fscript%3E", 404, id="echo"),
    pytest.param(WARMER, "GET", "/health", 200, id="warmer-health"),
    pytest.param(WARMER, "POST", "/libraries", 401, id="warmer-401"),
    pytest.param(WARMER, "DELETE", "/libraries", 405, id="warmer-405"),
    pytest.param(WARMER, "GET", "/debug/proxy/%3Cb%3E", 404, id="warmer-debug-forward-404"),
    pytest.param(PROXY, "GET", "/search/auto?q=%3Cscript%3E&maxResults=x", 400, id="proxy-400"),
    pytest.param(PROXY, "GET", "/%3Cscript%3E", 404, id="proxy-404"),
    pytest.param(PROXY, "OPTIONS", "/search/auto", 204, id="proxy-preflight"),
    pytest.param(ISBNDB, "GET", "/book/%3Cscript%3E", 400, id="isbndb-400"),
    pytest.param(ISBNDB, "GET", "/health", 200, id="isbndb-health"),
]


@pytest.mark.parametrize(("worker", "method", "path", "status"), SNIFFABLE)
async def test_every_response_carries_nosniff_and_a_locked_down_csp(
    worker: str, method: str, path: str, status: int
) -> None:
    """JSON answers (errors that echo input included) are never sniffed or framed as a page."""
    system = System(secrets=SECRETS)
    headers = AUTH if "/debug/" in path else {"origin": "https://app.test"}
    resp = await system.fetch(worker, path, method=method, headers=headers)
    assert resp.status == status, await resp.text()
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert resp.headers["referrer-policy"] == "no-referrer"
