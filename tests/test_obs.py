"""Observability: per-binding latency and request-id forwarding; metrics snapshots."""

from __future__ import annotations

from typing import Any

import pytest

from bookmeta import FakeClock, Metrics, ObservedService, Request, Response, json_response


class Recorder:
    """A Service that records what it was sent and answers as told."""

    def __init__(self, status: int = 200, result: Any = None) -> None:
        self.sent: list[Request] = []
        self.status = status
        self.result = result

    async def fetch(self, request: Request) -> Response:
        self.sent.append(request)
        return json_response({}, self.status)

    async def call(self, method: str, *args: Any) -> Any:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def observed(inner: Recorder, metrics: Metrics, clock: FakeClock) -> ObservedService:
    return ObservedService("PROXY", inner, metrics=metrics, clock=clock, request_id="rid-1")


async def test_fetch_forwards_the_request_id_and_records_latency() -> None:
    """HTTP calls carry x-request-id unless they have one; latency lands in binding.NAME."""
    inner, metrics, clock = Recorder(), Metrics(), FakeClock()
    service = observed(inner, metrics, clock)
    await service.fetch(Request("GET", "https://p.internal/a"))
    await service.fetch(Request("GET", "https://p.internal/b", {"x-request-id": "own"}))
    assert [r.headers["x-request-id"] for r in inner.sent] == ["rid-1", "own"]
    assert metrics.snapshot()["latency"]["binding.PROXY"]["count"] == 2


@pytest.mark.parametrize(
    ("result", "errors"),
    [
        ({"books": []}, 0),
        ({"error": {"code": "not_found", "status": 404}}, 0),
        ({"error": {"code": "upstream_error", "status": 502}}, 1),
    ],
)
async def test_rpc_server_errors_count_as_failed_calls(result: Any, errors: int) -> None:
    """An RPC error dict with a 5xx status is a failed call; a 404 is an answer."""
    metrics = Metrics()
    await observed(Recorder(result=result), metrics, FakeClock()).call("books", [])
    assert metrics.snapshot()["latency"]["binding.PROXY"]["errors"] == errors


async def test_a_raising_call_is_recorded_and_re_raised() -> None:
    """Exceptions pass through, after being counted."""
    metrics = Metrics()
    service = observed(Recorder(result=RuntimeError("lost")), metrics, FakeClock())
    with pytest.raises(RuntimeError):
        await service.call("books", [])
    assert metrics.snapshot()["latency"]["binding.PROXY"] == {
        "count": 1,
        "errors": 1,
        "sum_ms": 0.0,
        "max_ms": 0.0,
        "mean_ms": 0.0,
    }


async def test_request_id_follows_a_search_into_the_isbndb_worker(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One x-request-id appears in the proxy's and the isbndb worker's log lines."""
    import json

    from test_proxy_support import get, make_system, mocked

    system = make_system()
    with mocked():
        status, _, headers = await get(
            system,
            "/search/auto?q=inauthor:Frank%20Herbert&maxResults=5",
            headers={"x-request-id": "trace-123"},
        )
    assert status == 200
    assert headers["x-request-id"] == "trace-123"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    workers = {line["worker"] for line in lines if line.get("rid") == "trace-123"}
    assert workers == {"books_api_proxy", "isbndb_worker"}
