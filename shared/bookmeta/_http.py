"""Transport-neutral HTTP values, JSON responses and a small router.

Workers turn the runtime's request into `Request`, route it, and turn the
returned `Response` back (see `bookmeta.runtime`). Everything here is pure.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from ._errors import (
    BookmetaError,
    CircuitOpen,
    ConfigError,
    InvalidInput,
    InvalidISBN,
    PayloadTooLarge,
    RateLimited,
    TooManyRequests,
    UpstreamError,
)
from ._json import parse_json

log = logging.getLogger("bookmeta.http")

JSON_TYPE = "application/json; charset=utf-8"


class BodyStream(Protocol):
    """An incoming body not read yet (the runtime's stream): read once, up to a limit."""

    async def read(self, max_bytes: int) -> bytes:
        """All of the body; raises PayloadTooLarge as soon as more than ``max_bytes`` arrive."""
        ...


@dataclass(frozen=True, slots=True)
class Request:
    """An incoming or outgoing HTTP request; header names are lower-case.

    An outgoing request (and one built in a test) carries its ``body``. An incoming one from
    the runtime carries a ``stream`` instead, which nothing reads until a handler calls
    ``read_body``/``read_json`` with its limit: a refused request (method, route, auth, size)
    is answered without reading a byte of it.
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: BodyStream | None = field(default=None, compare=False, repr=False)

    @property
    def path(self) -> str:
        """The raw (still percent-encoded) path."""
        return urlsplit(self.url).path or "/"

    @property
    def query(self) -> dict[str, str]:
        """Query parameters, first value wins; raises InvalidInput on undecodable text."""
        raw = urlsplit(self.url).query
        try:
            pairs = parse_qsl(raw, keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidInput("query", "query string is not valid UTF-8") from exc
        out: dict[str, str] = {}
        for key, value in pairs:
            out.setdefault(key, value)
        return out

    def header(self, name: str) -> str | None:
        """A header value by case-insensitive name."""
        return self.headers.get(name.lower())

    @property
    def content_length(self) -> int | None:
        """The declared Content-Length, or None when absent or not a number."""
        raw = self.headers.get("content-length", "").strip()
        return int(raw) if raw.isdigit() and raw.isascii() else None

    async def read_body(self, max_bytes: int) -> bytes:
        """The body, at most ``max_bytes`` of it.

        Raises:
            PayloadTooLarge: before reading, when Content-Length exceeds ``max_bytes``; while
                reading a body without a length, as soon as the count passes the limit.
        """
        declared = self.content_length
        if declared is not None and declared > max_bytes:
            raise PayloadTooLarge(max_bytes, declared=declared)
        if self.stream is not None:
            return await self.stream.read(max_bytes)
        if len(self.body) > max_bytes:
            raise PayloadTooLarge(max_bytes, declared=len(self.body))
        return self.body

    async def read_json(self, max_bytes: int) -> Any:
        """The body (see ``read_body``) parsed as JSON, nesting bounded before parsing.

        Raises:
            PayloadTooLarge: the body is over ``max_bytes``.
            InvalidInput: it is not UTF-8 JSON, or nests deeper than ``MAX_JSON_DEPTH``.
        """
        return parse_json(await self.read_body(max_bytes))


@dataclass(slots=True)
class Response:
    """An HTTP response with a fully buffered body."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (nesting bounded first); raises ValueError when it is not."""
        return parse_json(self.body, param="response")


def json_response(
    data: Any, status: int = 200, *, headers: Mapping[str, str] | None = None
) -> Response:
    """A compact JSON response."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    out = {"content-type": JSON_TYPE}
    if headers:
        out.update({k.lower(): v for k, v in headers.items()})
    return Response(status, body, out)


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    details: Mapping[str, Any] | None = None,
) -> Response:
    """The one error shape: `{"error": {"code", "message", ...details}}`."""
    err: dict[str, Any] = {"code": code, "message": message}
    if details:
        err.update(details)
    return json_response({"error": err}, status, headers=headers)


def retry_after_header(seconds: float | None) -> dict[str, str]:
    """A `Retry-After` header in whole seconds (at least 1), or nothing."""
    if seconds is None:
        return {}
    return {"retry-after": str(max(1, int(seconds + 0.999)))}


def response_for_error(exc: BookmetaError) -> Response:
    """Map the shared exception tree to HTTP; the message never carries secrets."""
    if isinstance(exc, PayloadTooLarge):
        return error_response(
            413, "too_large", str(exc), details={"param": exc.param, "limit": exc.max_bytes}
        )
    if isinstance(exc, InvalidInput):
        return error_response(400, "invalid_input", str(exc), details={"param": exc.param})
    if isinstance(exc, InvalidISBN):
        return error_response(400, "invalid_isbn", str(exc), details={"param": "isbn"})
    if isinstance(exc, ConfigError):
        return error_response(500, "config_error", str(exc), details={"var": exc.name})
    if isinstance(exc, CircuitOpen):
        return error_response(
            503,
            "upstream_unavailable",
            f"{exc.name} is failing; circuit open, retry later",
            headers=retry_after_header(exc.retry_after_s),
        )
    if isinstance(exc, TooManyRequests):
        return error_response(
            429,
            "too_many_requests",
            str(exc),
            headers=retry_after_header(exc.retry_after_s),
            details={"limit": exc.scope},
        )
    if isinstance(exc, RateLimited):
        return error_response(
            503,
            "rate_limited",
            f"{exc.provider} rate limit reached; retry later",
            headers=retry_after_header(exc.retry_after_s or 1.0),
        )
    if isinstance(exc, UpstreamError):
        return error_response(502, "upstream_error", str(exc), details={"provider": exc.provider})
    return error_response(400, "bad_request", str(exc))


Handler = Callable[..., Awaitable[Response]]
_PARAM = re.compile(r"^\{([a-z_]+)\}$")


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    parts: tuple[str, ...]
    handler: Handler


class Router:
    """Method + path-segment routing; `{name}` segments are passed, unquoted, as kwargs.

    A router can be built once per isolate and shared by requests: ``dispatch(request, *bound)``
    calls ``handler(*bound, request, **params)``, so handlers may be unbound methods that get
    the invocation's object (``router.add("GET", "/x", App.on_x)``, ``dispatch(req, app)``).
    """

    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Register `handler(*bound, request, **params)` for `method` and `pattern`."""
        parts = tuple(p for p in pattern.split("/") if p)
        self._routes.append(_Route(method.upper(), parts, handler))

    def methods_for(self, path: str) -> list[str]:
        """Methods that have a route matching `path`."""
        return sorted({r.method for r in self._routes if _match(r.parts, path) is not None})

    async def dispatch(self, request: Request, *bound: Any) -> Response:
        """Route the request; input and upstream errors become JSON errors, never a 500 trace."""
        try:
            return await self._dispatch(request, bound)
        except BookmetaError as exc:
            return response_for_error(exc)

    async def _dispatch(self, request: Request, bound: tuple[Any, ...]) -> Response:
        allowed: set[str] = set()
        for route in self._routes:
            params = _match(route.parts, request.path)
            if params is None:
                continue
            if route.method != request.method.upper():
                allowed.add(route.method)
                continue
            return await route.handler(*bound, request, **params)
        if allowed:
            return error_response(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed here; use {', '.join(sorted(allowed))}",
                headers={"allow": ", ".join(sorted(allowed))},
            )
        return error_response(404, "not_found", "no such endpoint")


def _match(parts: Iterable[str], path: str) -> dict[str, str] | None:
    pattern = tuple(parts)
    segments = [s for s in path.split("/") if s != ""]
    if len(segments) != len(pattern):
        return None
    params: dict[str, str] = {}
    for want, got in zip(pattern, segments, strict=True):
        m = _PARAM.match(want)
        if m:
            try:
                params[m.group(1)] = unquote(got, errors="strict")
            except UnicodeDecodeError:
                raise InvalidInput(m.group(1), f"{m.group(1)} is not valid UTF-8") from None
        elif want != got:
            return None
    return params
