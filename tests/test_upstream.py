"""Outgoing JSON calls: statuses, timeouts and bad bodies map onto the exception tree."""

from __future__ import annotations

import httpx
import pytest
import respx

from bookmeta import RateLimited, UpstreamError, parse_retry_after, request_json

URL = "https://api.example.test/thing"


async def call() -> object:
    async with httpx.AsyncClient() as client:
        return await request_json(
            client, "GET", URL, provider="p", now=0.0, headers={"authorization": "SECRET"}
        )


@respx.mock
async def test_ok_json() -> None:
    """A 200 with JSON returns the parsed data."""
    respx.get(URL).respond(200, json={"a": 1})
    got = await call()
    assert got.status == 200  # type: ignore[attr-defined]
    assert got.data == {"a": 1}  # type: ignore[attr-defined]


@respx.mock
async def test_404_returns_instead_of_raising() -> None:
    """404 is an answer (not found), not an error."""
    respx.get(URL).respond(404, json={"errorMessage": "Not Found"})
    assert (await call()).status == 404  # type: ignore[attr-defined]


@respx.mock
async def test_429_raises_rate_limited_with_retry_after() -> None:
    """429 raises RateLimited carrying Retry-After."""
    respx.get(URL).respond(429, headers={"retry-after": "7"}, json={"message": "Limit Exceeded"})
    with pytest.raises(RateLimited) as info:
        await call()
    assert info.value.retry_after_s == 7.0


@pytest.mark.parametrize(
    ("response", "status"),
    [
        (httpx.Response(500), 500),
        (httpx.Response(403, json={"message": "Forbidden"}), 403),
        (httpx.Response(200, content=b"{not json"), None),
        (httpx.Response(200, content=b'{"truncated": '), None),
        (httpx.Response(200, content=b"[" * 100 + b"]" * 100), None),
    ],
    ids=["5xx", "403", "malformed", "truncated", "nested-past-the-limit"],
)
@respx.mock
async def test_failures_raise_upstream_error(response: httpx.Response, status: int | None) -> None:
    """5xx, refusals and bad bodies raise UpstreamError, with no URL or header in the message."""
    respx.get(URL).mock(return_value=response)
    with pytest.raises(UpstreamError) as info:
        await call()
    assert info.value.status == status
    assert "SECRET" not in str(info.value)
    assert URL not in str(info.value)


@respx.mock
async def test_a_deeply_nested_404_body_is_dropped() -> None:
    """A 404 whose body nests past the limit is still a 404, its body unparsed (None)."""
    respx.get(URL).respond(404, content=b"[" * 100_000 + b"]" * 100_000)
    got = await call()
    assert got.status == 404  # type: ignore[attr-defined]
    assert got.data is None  # type: ignore[attr-defined]


@respx.mock
async def test_timeout_raises_upstream_error_without_status() -> None:
    """A timeout is an UpstreamError with no status (counts against the breaker)."""
    respx.get(URL).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(UpstreamError) as info:
        await call()
    assert info.value.status is None


def test_retry_after_forms() -> None:
    """Retry-After accepts delta-seconds and HTTP dates; junk is ignored."""
    assert parse_retry_after("5", now=0) == 5.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:30 GMT", now=10.0) == 20.0
    assert parse_retry_after("soon", now=0) is None
    assert parse_retry_after(None, now=0) is None
    assert parse_retry_after("²", now=0) is None
    assert parse_retry_after("9" * 400, now=0) == 86_400.0
    assert parse_retry_after("0000000000005", now=0) == 5.0
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now=0) == 86_400.0
