"""`bookmeta.runtime.FetchTransport`: httpx requests as runtime fetches (strict fake fetch)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from bookmeta import UpstreamError, request_json
from bookmeta.runtime import FetchTransport, JsError


class _ArrayBuffer:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def to_bytes(self) -> bytes:
        return self._data


@dataclass
class _FetchedResponse:
    """What the runtime's fetch resolves to: a status, Headers, a body read once."""

    status: int
    headers: dict[str, str]
    body: bytes
    used: bool = False

    async def arrayBuffer(self) -> _ArrayBuffer:  # the JS name
        if self.used:
            raise TypeError("body already used")
        self.used = True
        return _ArrayBuffer(self.body)


@dataclass
class FakeFetch:
    """``fetch(url, init)``: the init's options as the runtime reads them; forbidden request
    headers (Host, Connection, Content-Length) are refused, as a strict runtime would."""

    answer: _FetchedResponse | Exception
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def __call__(self, url: str, init: dict[str, Any]) -> _FetchedResponse:
        assert set(init) <= {"method", "headers", "body", "signal", "redirect"}, init
        names = {name.lower() for name, _ in init["headers"]}
        assert not names & {"host", "connection", "content-length"}, names
        self.calls.append((url, init))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def _client(fetch: FakeFetch) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=FetchTransport(fetch), trust_env=False)


async def test_a_get_is_one_fetch_and_its_answer_an_httpx_response() -> None:
    """URL with its query, method and headers go to fetch; the decoded body comes back with
    its encoding headers dropped (fetch has already decoded it)."""
    body = json.dumps({"items": [1, 2]}).encode()
    fetch = FakeFetch(
        _FetchedResponse(
            200,
            {"content-type": "application/json", "content-encoding": "gzip", "x-id": "7"},
            body,
        )
    )
    async with _client(fetch) as client:
        resp = await client.get(
            "https://books.test/v1/volumes", params={"q": "isbn:1"}, headers={"User-Agent": "me"}
        )
    assert (resp.status_code, resp.json(), resp.headers["x-id"]) == (200, {"items": [1, 2]}, "7")
    assert "content-encoding" not in resp.headers
    [(url, init)] = fetch.calls
    assert url == "https://books.test/v1/volumes?q=isbn%3A1"
    assert init["method"] == "GET"
    assert ["user-agent", "me"] in [[k.lower(), v] for k, v in init["headers"]]
    assert "body" not in init
    assert init["redirect"] == "manual", "httpx follows no redirect; fetch must not either"


async def test_a_json_post_sends_its_body() -> None:
    fetch = FakeFetch(_FetchedResponse(200, {}, b"{}"))
    async with _client(fetch) as client:
        await client.post("https://api.test/books", json={"isbns": ["9780441013593"]})
    [(_, init)] = fetch.calls
    assert json.loads(init["body"]) == {"isbns": ["9780441013593"]}
    assert ["content-type", "application/json"] in [[k.lower(), v] for k, v in init["headers"]]


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (JsError("TimeoutError", "The operation was aborted due to timeout"), httpx.ReadTimeout),
        (JsError("TypeError", "Network connection lost."), httpx.ConnectError),
    ],
)
async def test_a_failed_fetch_is_httpx_s_own_error(
    error: Exception, raised: type[httpx.HTTPError]
) -> None:
    """A timeout (AbortSignal.timeout) or a failed fetch raise what httpx's socket transport
    would, so the upstream layer maps them as before (timeout vs request failed)."""
    async with _client(FakeFetch(error)) as client:
        with pytest.raises(raised):
            await client.get("https://api.test/x")
        with pytest.raises(UpstreamError) as caught:
            await request_json(client, "GET", "https://api.test/x", provider="p", now=0.0)
    assert ("timed out" in str(caught.value)) is (raised is httpx.ReadTimeout)


async def test_a_bug_in_our_code_is_not_reported_as_a_network_failure() -> None:
    """Only a rejected fetch (a JS error) becomes ConnectError; a Python error propagates, so a
    bug never counts against a provider's breaker as if the provider had failed."""
    async with _client(FakeFetch(AttributeError("oops"))) as client:
        with pytest.raises(AttributeError):
            await client.get("https://api.test/x")
