"""Test stand-in for the Workers runtime SDK module `workers` (PyPI workers-runtime-sdk).

The real module imports `js`/`pyodide` and cannot load in CPython. This mirrors the
signatures the project uses, and is as strict as the real one where it matters:
`Response` accepts only str/bytes/None bodies, `WorkerEntrypoint(ctx, env)` and
`DurableObject(ctx, env)` keep both, and a
body is read once: whole (`bytes()`), or chunk by chunk through `request.body` (a
ReadableStream), never both; `bytes_read` counts what was handed out.
It is put on sys.path by tests/conftest.py only.
"""

from __future__ import annotations

import json as _json
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from typing import Any

__all__ = [
    "CHUNK_BYTES",
    "DurableObject",
    "FetchResponse",
    "Headers",
    "JsDict",
    "ReadableStream",
    "Request",
    "Response",
    "WorkerEntrypoint",
]


class JsDict(dict):  # type: ignore[type-arg]
    """What a JS object becomes after crossing RPC: a dict subclass with attribute access."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Headers(Mapping[str, str]):
    """Case-insensitive header mapping (the real SDK gives an HTTPMessage-like mapping)."""

    def __init__(self, items: Any = None) -> None:
        self._items: dict[str, str] = {}
        if items is None:
            return
        pairs = items.items() if hasattr(items, "items") else items
        for key, value in pairs:
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError("header names and values must be str")
            if "\r" in value or "\n" in value or "\r" in key or "\n" in key:
                raise TypeError(f"Invalid header value for {key!r}")
            self._items[key.lower()] = value

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._items

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return self._items.get(key.lower(), default)


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes | memoryview):
        return bytes(body)
    raise TypeError(f"Unsupported type in body: {type(body).__name__}")


CHUNK_BYTES = 64 * 1024  # what a streamed body delivers per read() (workerd's vary, ~4-64 KiB)


class Uint8Array:
    """A chunk of a streamed body, as Pyodide hands it over (a JsBuffer)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    @property
    def byteLength(self) -> int:
        return len(self._data)

    def to_bytes(self) -> bytes:
        return self._data


class ReadResult:
    """What ``await reader.read()`` resolves to: ``{done, value}``."""

    def __init__(self, done: bool, value: Uint8Array | None = None) -> None:
        self.done = done
        self.value = value


class ReadableStreamDefaultReader:
    """``stream.getReader()``: ``read()`` one chunk at a time, ``cancel()``, ``releaseLock()``."""

    def __init__(self, owner: _Body) -> None:
        self._owner = owner
        self._released = False

    def _check(self) -> None:
        if self._released:
            raise TypeError("This ReadableStreamDefaultReader has been released.")

    async def read(self) -> ReadResult:
        self._check()
        return self._owner._next_chunk()

    async def cancel(self, reason: Any = None) -> None:
        self._check()
        self._owner._cancelled = True

    def releaseLock(self) -> None:
        self._released = True
        if self._owner._stream is not None:
            self._owner._stream.locked = False


class ReadableStream:
    """``request.body``: the body as a JS ReadableStream (one reader at a time)."""

    def __init__(self, owner: _Body) -> None:
        self._owner = owner
        self.locked = False

    def getReader(self) -> ReadableStreamDefaultReader:
        if self.locked:
            raise TypeError("ReadableStream is locked to a reader.")
        if self._owner._used and not self._owner._streaming:
            raise TypeError("Body has already been used.")
        self.locked = True
        return ReadableStreamDefaultReader(self._owner)


class _Body:
    """A body read once, whole (``bytes``/``text``/``json``) or as a stream (``body``).

    ``bytes_read`` counts what was handed out either way, so a test can prove that a refused
    request was answered without reading any of its body.
    """

    _body: bytes
    _used: bool
    _has_body: bool
    bytes_read: int = 0
    _stream: ReadableStream | None = None
    _streaming: bool = False
    _cancelled: bool = False

    @property
    def body_used(self) -> bool:
        return self._used

    @property
    def body(self) -> ReadableStream | None:
        """The body stream (the same object every time), or None (JS null) without a body."""
        if not self._has_body:
            return None
        if self._stream is None:
            self._stream = ReadableStream(self)
        return self._stream

    def _take(self) -> bytes:
        if self._used or (self._stream is not None and self._stream.locked):
            raise TypeError("Body has already been used.")
        self._used = True
        self.bytes_read = len(self._body)
        return self._body

    def _next_chunk(self) -> ReadResult:
        self._used = self._streaming = True
        if self._cancelled or self.bytes_read >= len(self._body):
            return ReadResult(True)
        chunk = self._body[self.bytes_read : self.bytes_read + CHUNK_BYTES]
        self.bytes_read += len(chunk)
        return ReadResult(False, Uint8Array(chunk))

    async def text(self) -> str:
        return self._take().decode("utf-8", errors="replace")

    async def bytes(self) -> bytes:
        return self._take()

    async def json(self, **kwargs: Any) -> Any:
        return _json.loads(self._take(), **kwargs)


class Request(_Body):
    """`workers.Request(input, **FetchKwargs)`: url, method, headers, body readers."""

    def __init__(self, input: str | Request, **options: Any) -> None:
        unknown = set(options) - {"method", "headers", "body", "redirect", "cf"}
        if unknown:
            raise TypeError(f"unexpected Request options: {sorted(unknown)}")
        if isinstance(input, Request):
            base_url, base_method, base_headers, base_body = (
                input.url,
                input.method,
                dict(input.headers),
                input._body,
            )
        else:
            base_url, base_method, base_headers, base_body = str(input), "GET", {}, b""
        method = options.get("method", base_method)
        method = method.value if hasattr(method, "value") else str(method)
        self.url = base_url
        self.method = method.upper()
        self.headers = Headers(options.get("headers", base_headers))
        body = options.get("body")
        if body is not None and self.method in ("GET", "HEAD"):
            raise TypeError("Request with a GET or HEAD method cannot have a body.")
        self._body = _body_bytes(body) if body is not None else base_body
        self._has_body = body is not None or bool(base_body)
        self._used = False

    def __repr__(self) -> str:
        return f"Request(method={self.method!r}, url={self.url!r})"


class FetchResponse(_Body):
    """What `fetch` and binding `fetch` return: status, headers, body readers."""

    def __init__(self, body: bytes, status: int, headers: Headers, url: str = "") -> None:
        self._body = body
        self._has_body = bool(body)
        self._used = False
        self.status = status
        self.headers = headers
        self.url = url

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def status_text(self) -> str:
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return ""


class Response(FetchResponse):
    """`workers.Response(body=None, status=None, status_text="", headers=None)`."""

    def __init__(
        self,
        body: Any = None,
        status: int | None = None,
        status_text: str = "",
        headers: Any = None,
        web_socket: Any = None,
    ) -> None:
        if body is not None and not isinstance(body, str | bytes):
            raise TypeError(f"Unsupported type in Response: {type(body).__name__}")
        code = int(status) if status else 200
        if not 200 <= code <= 599 and code != 101:
            raise ValueError(
                f"Responses may only be constructed with status codes in 200-599; got {code}"
            )
        if body is not None and code in (101, 204, 205, 304):
            raise TypeError(f"Response with null body status {code} cannot have body")
        out = Headers(headers)
        if isinstance(body, str) and "content-type" not in out:
            # As the runtime does for a string body (bytes get no content-type).
            out = Headers({**out, "content-type": "text/plain;charset=UTF-8"})
        super().__init__(_body_bytes(body), code, out)


class WorkerEntrypoint:
    """Base of `class Default(WorkerEntrypoint)`: keeps `ctx` and `env`."""

    def __init__(self, ctx: Any, env: Any) -> None:
        self.ctx = ctx
        self.env = env


class DurableObject:
    """Base of a Durable Object class: keeps `ctx` (its state and storage) and `env`."""

    def __init__(self, ctx: Any, env: Any) -> None:
        self.ctx = ctx
        self.env = env
