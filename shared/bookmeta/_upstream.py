"""Outgoing JSON calls over httpx, with failures mapped onto the shared exception tree.

Messages never include the request URL or headers (they may carry API keys).
"""

from __future__ import annotations

import email.utils
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ._errors import InvalidInput, RateLimited, UpstreamError
from ._json import parse_json

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_RETRY_AFTER_S = 86_400.0
_CREDENTIAL_PARAM = re.compile(
    r"([?&](?:key|api_key|apikey|access_token|token)=)[^&#\s\"']*", re.IGNORECASE
)


class _RedactCredentials(logging.Filter):
    """Blank credential query values (Google's ``key=``) in log records.

    httpx logs every request's full URL at INFO ("HTTP Request: GET https://...?key=...");
    installed on the ``httpx`` logger so a configured log level never leaks an API key.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _CREDENTIAL_PARAM.sub(r"\1[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _install_redaction(logger: logging.Logger) -> None:
    if not any(isinstance(f, _RedactCredentials) for f in logger.filters):
        logger.addFilter(_RedactCredentials())


_install_redaction(logging.getLogger("httpx"))


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """A provider's answer: status and parsed JSON (None for 404 or an empty body)."""

    status: int
    data: Any
    headers: Mapping[str, str]


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date).

    Junk is None; absurd values are capped at ``MAX_RETRY_AFTER_S`` (a day).
    """
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        digits = value.lstrip("0") or "0"
        return MAX_RETRY_AFTER_S if len(digits) > 12 else min(float(digits), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER_S)


async def request_json(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    provider: str,
    now: float,
    params: Mapping[str, str | int] | None = None,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    timeout_s: float = 8.0,
) -> UpstreamResponse:
    """Call a JSON API. 2xx and 404 return; 429 raises RateLimited; others raise UpstreamError.

    Timeouts and connection failures raise UpstreamError with ``status=None``; a 2xx body
    that is not JSON raises UpstreamError with ``status=None`` as well (both count against
    the provider's breaker).
    """
    try:
        resp = await client.request(
            method,
            url,
            params=dict(params) if params else None,
            headers=dict(headers) if headers else None,
            json=json_body,
            timeout=timeout_s,
        )
    except httpx.TimeoutException:
        raise UpstreamError(provider, None, f"timed out after {timeout_s:g}s") from None
    except httpx.HTTPError as exc:
        raise UpstreamError(provider, None, f"request failed ({type(exc).__name__})") from None
    status = resp.status_code
    if status == 429:
        retry_after = parse_retry_after(resp.headers.get("retry-after"), now=now)
        raise RateLimited(provider, "rate limit exceeded", retry_after_s=retry_after)
    if status == 404:
        return UpstreamResponse(404, _maybe_json(resp.content), resp.headers)
    if status >= 500:
        raise UpstreamError(provider, status, "server error")
    if status >= 400:
        raise UpstreamError(provider, status, "request refused")
    if len(resp.content) > MAX_BODY_BYTES:
        raise UpstreamError(provider, None, "response too large")
    if not resp.content.strip():
        return UpstreamResponse(status, None, resp.headers)
    try:
        data = parse_json(resp.content)
    except InvalidInput:
        raise UpstreamError(provider, None, "malformed JSON in response") from None
    return UpstreamResponse(status, data, resp.headers)


def _maybe_json(content: bytes) -> Any:
    try:
        return parse_json(content) if content.strip() else None
    except InvalidInput:
        return None
