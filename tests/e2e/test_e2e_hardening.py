"""End-to-end hardening on workerd (issue 13): nesting, unread bodies, RPC arity, headers.

What only the real runtime shows: deeply nested JSON overflowed the wasm stack and aborted the
isolate (item 1); a refused body was still read whole (3); an RPC argument mismatch raised a
TypeError across the binding (6).
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest

if TYPE_CHECKING:  # tests/e2e/conftest.py: a conftest is not importable by name at runtime
    from conftest import WorkersSession

pytestmark = pytest.mark.e2e

DEEP = "[" * 100_000 + "]" * 100_000
CRON = "*/15 * * * *"
HEALTH_WITHIN_S = 1.0
# A library of one author no provider knows: it has cron work (one author unit) and touches no
# ISBN or author the other e2e tests look at.
LONE_AUTHOR_CSV = "Title,Author\r\nNo Such Book,Zebedee Hardening-Probe\r\n"


def _healths(e2e: WorkersSession) -> dict[str, float]:
    """Seconds each worker took to answer /health (warmer direct, the others via its bindings)."""
    took: dict[str, float] = {}
    for name, path in (
        ("warmer", "/health"),
        ("proxy", "/debug/proxy/health"),
        ("isbndb", "/debug/isbndb/health"),
    ):
        started = time.monotonic()
        response = e2e.client.get(f"{e2e.base}{path}", headers=e2e.auth, timeout=10)
        took[name] = time.monotonic() - started
        assert response.status_code == 200, (name, response.status_code, response.text[:300])
    return took


@pytest.mark.parametrize(
    ("path", "content_type", "status"),
    [
        pytest.param("/libraries", "text/csv", 415, id="warmer-upload"),
        pytest.param("/debug/rpc/isbndb/books", "application/json", 400, id="isbndb-rpc"),
        pytest.param("/debug/rpc/proxy/search_auto", "application/json", 400, id="proxy-rpc"),
    ],
)
def test_deep_json_is_refused_and_every_worker_stays_up(
    e2e: WorkersSession, path: str, content_type: str, status: int
) -> None:
    """A 100,000-level body gets its 4xx; then all three answer /health within a second."""
    response = e2e.warmer(
        "POST", path, content=DEEP, headers={**e2e.auth, "content-type": content_type}
    )
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert "nested deeper than 32 levels" in response.json()["error"]["message"]
    took = _healths(e2e)
    assert max(took.values()) < HEALTH_WITHIN_S, (took, e2e.log_tail())


def test_a_cron_running_during_deep_bodies_loses_nothing(e2e: WorkersSession) -> None:
    """Deep bodies sent while a cron tick runs: the tick completes and leaves no lease behind."""
    upload = e2e.upload(LONE_AUTHOR_CSV)
    assert upload.status_code == 201, upload.text
    library = upload.json()["id"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        tick = pool.submit(e2e.scheduled, CRON)
        deep = [
            pool.submit(
                httpx.post,
                f"{e2e.base}{path}",
                content=DEEP,
                headers={**e2e.auth, "content-type": content_type},
                timeout=60,
            )
            for path, content_type in (
                ("/libraries", "text/csv"),
                ("/debug/rpc/isbndb/books", "application/json"),
                ("/debug/rpc/proxy/health", "application/json"),
            )
        ]
        assert tick.result().status_code == 200, f"{tick.result().text}\n{e2e.log_tail()}"
        assert all(400 <= d.result().status_code < 500 for d in deep)
    # Nothing left stuck (a crashed run once held a lease: 409 busy for 51 s): warm-now is
    # accepted, and the queue warms the library to the end.
    again = e2e.warmer("POST", f"/libraries/{library}/warm", headers=e2e.auth)
    assert again.status_code == 200, (again.status_code, again.text[:300])
    deadline = time.monotonic() + 60
    while True:
        progress = e2e.warmer("GET", f"/libraries/{library}", headers=e2e.auth).json()
        if progress["status"] == "done":
            break
        assert time.monotonic() < deadline, progress
        time.sleep(0.5)


def _status_of_unfinished_request(base: str, head: str, sent: bytes) -> int:
    """Send request headers and part of a body that never completes; return the status line's
    code. A server that reads the body first never answers (the socket times out)."""
    url = urlsplit(base)
    with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=15) as s:
        s.sendall(head.encode("latin-1") + b"\r\n" + sent)
        received = b""
        while b"\r\n" not in received:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:  # answered, then closed on the unsent body
                break
            if not chunk:
                break
            received += chunk
    assert received.startswith(b"HTTP/1."), received[:200]
    return int(received.split(b" ", 2)[1])


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        pytest.param("POST", "/libraries", "Content-Length: 99614720\r\n", 401, id="95mb-no-token"),
        pytest.param(
            "POST", "/libraries", "Transfer-Encoding: chunked\r\n", 401, id="chunked-no-token"
        ),
        pytest.param(
            "POST", "/libraries", "Content-Length: 99614720\r\n{auth}", 413, id="95mb-token"
        ),
        pytest.param("PUT", "/health", "Content-Length: 99614720\r\n", 405, id="put-health"),
        pytest.param(
            "POST", "/debug/rpc/isbndb/books", "Content-Length: 99614720\r\n", 401, id="rpc"
        ),
    ],
)
def test_a_refused_body_is_never_read(
    e2e: WorkersSession, method: str, path: str, headers: str, status: int
) -> None:
    """An oversized or unauthorized body is answered while most of it was never even sent."""
    auth = f"Authorization: Bearer {e2e.token}\r\n"
    host = urlsplit(e2e.base).netloc
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/csv\r\n"
        f"Connection: close\r\n{headers.format(auth=auth)}"
    )
    first = b"400\r\n" + b"x" * 1024 if "chunked" in headers else b"x" * 1024
    assert _status_of_unfinished_request(e2e.base, head, first) == status
    assert _healths(e2e)["warmer"] < HEALTH_WITHIN_S


def test_rpc_argument_mismatches_come_back_as_results(e2e: WorkersSession) -> None:
    """Over the real RPC: a left-out argument takes its default, wrong counts return errors."""
    auto = e2e.rpc("proxy", "search_auto", "Dune")
    assert auto.get("kind") == "books#volumes", auto
    for worker, method, args in (
        ("proxy", "cache_status", []),
        ("proxy", "search_isbn", []),
        ("proxy", "health", ["surplus"]),
        ("isbndb", "author", []),
        ("isbndb", "book", ["9780441013593", "surplus"]),
    ):
        result = e2e.rpc(worker, method, *args)
        assert result["error"]["status"] == 400, (worker, method, result)
        assert result["error"]["code"] == "invalid_input", (worker, method, result)


def test_errors_that_echo_input_are_not_sniffable(e2e: WorkersSession) -> None:
    """A 404 reflecting the path carries nosniff and a CSP that allows nothing."""
    response = e2e.warmer("GET", "/libraries/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert response.status_code == 404, response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
