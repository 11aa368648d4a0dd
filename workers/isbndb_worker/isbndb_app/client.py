"""Calls to ISBNdb: key guard slot, retry and circuit breaker around `bookmeta.request_json`.

The API key only ever goes into the ``Authorization`` header of the outgoing request: it is
not logged, and `request_json` keeps URLs and headers out of its error messages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from bookmeta import (
    CircuitBreaker,
    Clocks,
    Log,
    Metrics,
    Purpose,
    RetryEvent,
    RetryPolicy,
    UpstreamError,
    UpstreamResponse,
    request_json,
    retry,
)

from .books import PROVIDER
from .config import RETRY_AFTER_CAP_S, RETRY_ATTEMPTS, RETRY_DEADLINE_S, TIMEOUT_S
from .keyguard import KeyGuard

POLICY = RetryPolicy(
    attempts=RETRY_ATTEMPTS,
    wait_initial_s=0.25,
    wait_max_s=2.0,
    retry_after_cap_s=RETRY_AFTER_CAP_S,
    deadline_s=RETRY_DEADLINE_S,
)


class HttpSession:
    """One `httpx.AsyncClient` per invocation, made on first use and closed at its end.

    A client (and its connections) must not outlive the request that made it on Workers,
    and building one costs CPU, so cache hits never build one.
    """

    def __init__(self, factory: Callable[[], httpx.AsyncClient] = httpx.AsyncClient) -> None:
        self._factory = factory
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        """The invocation's client."""
        if self._client is None:
            self._client = self._factory()
        return self._client

    async def aclose(self) -> None:
        """Close the client if one was made."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


class IsbndbClient:
    """ISBNdb v2 over HTTP: every attempt (retries too) takes a slot from the key ``guard``
    for ``purpose`` first; retried per ``policy``, behind ``breaker``.

    Raises (from `get`/`post`):
        RateLimited: ISBNdb kept answering 429 after the retries.
        UpstreamError: 4xx other than 404 (not retried), or 5xx/timeouts after the retries.
        CircuitOpen: the breaker is open; no call is made (and no slot taken).
        QuotaExhausted, GuardRefused: the key guard refused; no call is made.
    """

    def __init__(
        self,
        *,
        session: HttpSession,
        base_url: str,
        api_key: str,
        breaker: CircuitBreaker,
        guard: KeyGuard,
        purpose: Purpose,
        clocks: Clocks,
        metrics: Metrics,
        log: Log | None = None,
        policy: RetryPolicy = POLICY,
    ) -> None:
        self._session = session
        self._base_url = base_url
        self._headers = {"authorization": api_key, "accept": "application/json"}
        self._breaker = breaker
        self._guard = guard
        self._purpose = purpose
        self._clocks = clocks
        self._metrics = metrics
        self._log = log
        self._policy = policy

    async def get(
        self, path: str, params: Mapping[str, str | int] | None = None
    ) -> UpstreamResponse:
        """GET ``path`` (already URL-encoded) under the base URL."""
        return await self._call("GET", path, params=params)

    async def post(self, path: str, json_body: Any) -> UpstreamResponse:
        """POST ``json_body`` to ``path`` under the base URL."""
        return await self._call("POST", path, json_body=json_body)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
    ) -> UpstreamResponse:
        url = self._base_url + path

        async def attempt() -> UpstreamResponse:
            await self._guard.take(self._purpose)
            self._metrics.incr("upstream.calls")
            started = self._clocks.monotonic()
            ok = False
            try:
                response = await request_json(
                    self._session.client(),
                    method,
                    url,
                    provider=PROVIDER,
                    now=self._clocks.wall(),
                    params=params,
                    headers=self._headers,
                    json_body=json_body,
                    timeout_s=TIMEOUT_S,
                )
                ok = True
                return response
            except UpstreamError as exc:
                status = exc.status if exc.status is not None else "no_status"
                self._metrics.incr(f"upstream.errors.{status}")
                raise
            finally:
                elapsed_ms = (self._clocks.monotonic() - started) * 1000.0
                self._metrics.observe("upstream.isbndb", elapsed_ms, ok=ok)

        async def with_retries() -> UpstreamResponse:
            return await retry(
                attempt,
                policy=self._policy,
                clock=self._clocks.monotonic,
                sleep=self._clocks.sleep,
                on_retry=self._on_retry,
            )

        return await self._breaker.call(with_retries)

    def _on_retry(self, event: RetryEvent) -> None:
        self._metrics.incr("upstream.retries")
        if self._log is not None:
            status = getattr(event.error, "status", None)
            self._log.warning(
                "upstream.retry", attempt=event.attempt, wait_s=event.wait_s, status=status
            )
