"""The shared request wrapper: request id, timing header, logs, last-resort 500."""

from __future__ import annotations

import json

import pytest

from bookmeta import FakeClock, Log, Metrics, Request, Response, json_response, serve


async def test_request_id_is_kept_and_timing_added() -> None:
    """A sane caller request id is echoed; x-response-time is set; one log line per request."""
    lines: list[str] = []
    clock = FakeClock(5.0)

    async def handler(request: Request, log: Log) -> Response:
        clock.advance(0.25)
        return json_response({"ok": True})

    resp = await serve(
        Request("GET", "https://w.test/x", {"x-request-id": "abc-123"}),
        handler,
        worker="w",
        metrics=Metrics(),
        clock=clock,
        sink=lines.append,
    )
    assert resp.headers["x-request-id"] == "abc-123"
    assert resp.headers["x-response-time"] == "250.0ms"
    record = json.loads(lines[-1])
    assert record["rid"] == "abc-123"
    assert record["status"] == 200


async def test_crash_becomes_json_500_without_trace() -> None:
    """An unexpected exception is a JSON 500 carrying the request id, never a traceback."""
    lines: list[str] = []
    metrics = Metrics()

    async def handler(request: Request, log: Log) -> Response:
        raise ZeroDivisionError("secret internals")

    resp = await serve(
        Request("GET", "https://w.test/x", {"x-request-id": "bad id with spaces"}),
        handler,
        worker="w",
        metrics=metrics,
        clock=FakeClock(),
        sink=lines.append,
    )
    body = resp.json()
    assert resp.status == 500
    assert body["error"]["code"] == "internal_error"
    assert "Traceback" not in resp.text()
    assert "secret internals" not in resp.text()
    assert resp.headers["x-request-id"] != "bad id with spaces"
    assert metrics.counters["http.5xx"] == 1
    assert any(json.loads(line)["event"] == "request.crashed" for line in lines)


async def test_every_response_gets_the_security_headers_unless_it_has_its_own() -> None:
    """nosniff, a locked-down CSP and no-referrer are added; a handler's own CSP is kept."""

    async def page(request: Request, log: Log) -> Response:
        return Response(200, b"<p>", {"content-security-policy": "script-src 'self'"})

    async def crash(request: Request, log: Log) -> Response:
        raise RuntimeError("boom")

    def run(handler: object) -> object:
        return serve(
            Request("GET", "https://w.test/x"),
            handler,  # type: ignore[arg-type]
            worker="w",
            metrics=Metrics(),
            clock=FakeClock(0.0),
            sink=lambda line: None,
        )

    own = await run(page)  # type: ignore[misc]
    failed = await run(crash)  # type: ignore[misc]
    assert own.headers["content-security-policy"] == "script-src 'self'"
    assert own.headers["x-content-type-options"] == "nosniff"
    assert failed.status == 500
    assert failed.headers["x-content-type-options"] == "nosniff"
    assert failed.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert failed.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(
    ("routine", "status", "took_s", "logged"),
    [
        (True, 200, 0.01, False),
        (True, 204, 0.2, False),
        (True, 200, 0.25, True),  # slow: logged all the same
        (True, 404, 0.01, True),  # failed: logged
        (True, 500, 0.01, True),
        (False, 200, 0.01, True),
    ],
    ids=["routine", "routine-204", "routine-but-slow", "routine-but-404", "routine-but-500", "not"],
)
async def test_routine_answers_get_no_log_line(
    routine: bool, status: int, took_s: float, logged: bool
) -> None:
    """A fast answer below 400 that the app calls routine writes no line; all are counted."""
    lines: list[str] = []
    clock = FakeClock()
    metrics = Metrics()

    async def handler(request: Request, log: Log) -> Response:
        clock.advance(took_s)
        return Response(status, b"", {"x-kind": "cached"})

    resp = await serve(
        Request("GET", "https://w.test/x"),
        handler,
        worker="w",
        metrics=metrics,
        clock=clock,
        sink=lines.append,
        routine=lambda req, resp: routine and resp.headers.get("x-kind") == "cached",
    )
    assert "x-request-id" in resp.headers
    assert [json.loads(line)["event"] for line in lines] == (["request"] if logged else [])
    assert metrics.latency["http.request"].count == 1
