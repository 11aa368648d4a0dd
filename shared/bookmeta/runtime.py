"""The only module that touches the Workers runtime (`workers`, JS proxies).

It turns the runtime's request, env bindings and context into bookmeta's small
interfaces (`Request`/`Response`, `KVStore`, `BlobStore`, `Service`, `ObjectNamespace`,
`SqlStore`, `WorkerEnv`) and back.
Everything JS-shaped (camelCase options, JS null, dict subclasses, memoryview) stops here.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any

import httpx
from workers import Response as RuntimeResponse

try:  # on workerd: build the JS Response in one conversion (the SDK converts header by header)
    from js import AbortController as _JsAbortController
    from js import AbortSignal as _JsAbortSignal
    from js import Object as _JsObject
    from js import Response as _JsResponse
    from js import fetch as _js_fetch
    from pyodide.ffi import JsException as JsError  # what a rejected JS promise raises
    from pyodide.ffi import to_js as _to_js
except ImportError:  # CPython (tests): the SDK's Response, which the harness stub models
    _JsResponse = None
    _js_fetch = None

    # Not pyodide-py's JsException: importing the pyodide package costs ~20 modules at start-up.
    class JsError(Exception):  # type: ignore[no-redef]
        """Stands for ``pyodide.ffi.JsException`` in CPython: the JS error's name and message."""

        def __init__(self, name: str, message: str) -> None:
            super().__init__(name, message)
            self.name = name


from ._env import Clocks, current_clocks
from ._errors import PayloadTooLarge, UpstreamError
from ._http import Request, Response
from ._stores import Blob, BlobListing, KVEntry, KVListing, SqlValue

log = logging.getLogger("bookmeta.runtime")

_NO_BODY_STATUSES = frozenset({101, 204, 205, 304})
# httpcore runs `import sniffio` each time it makes a lock or a connection (about 16 times per
# merged miss) to pick its async library; sniffio is not vendored, and a failed import searches
# the whole sys.path again every time (several ms of CPU per miss on workerd).
_ABSENT_ON_HOT_PATHS = ("sniffio",)


def mark_absent(names: Iterable[str]) -> list[str]:
    """Record modules that cannot be imported as absent (None in ``sys.modules``), so each later
    ``import`` of them fails at once instead of searching ``sys.path`` again. Returns the names
    marked; an importable module is left alone. Module search only: no I/O beyond it."""
    marked = []
    for name in names:
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            sys.modules[name] = None  # type: ignore[assignment]  # the documented import block
            marked.append(name)
    return marked


mark_absent(_ABSENT_ON_HOT_PATHS)


def _field(obj: Any, name: str, default: Any = None) -> Any:
    """Read ``name`` from a converted JS object: a dict (subclass) or an attribute proxy."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def to_python(value: Any) -> Any:
    """Plain Python data from what crossed a binding (dict subclasses, memoryview, JS null)."""
    if isinstance(value, Mapping):
        return {str(k): to_python(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_python(v) for v in value]
    if isinstance(value, memoryview):
        return value.tobytes()
    return value


def _headers(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    items = raw.items() if hasattr(raw, "items") else raw
    return {str(k).lower(): str(v) for k, v in items}


class RequestBody:
    """`BodyStream` over the runtime request's ReadableStream: chunks counted as they arrive.

    Nothing is read until a handler asks (after its method, route, auth and Content-Length
    checks); past ``max_bytes`` the stream is cancelled, so an oversized body costs at most
    the limit plus one chunk of memory.
    """

    def __init__(self, request: Any) -> None:
        self._request = request

    async def read(self, max_bytes: int) -> bytes:
        stream = _field(self._request, "body")
        if stream is None or not hasattr(stream, "getReader"):  # no body (JS null)
            return b""
        reader = stream.getReader()
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await reader.read()
            if _field(chunk, "done", True):
                return b"".join(chunks)
            data = bytes(_field(chunk, "value").to_bytes())
            size += len(data)
            if size > max_bytes:
                await reader.cancel()
                raise PayloadTooLarge(max_bytes)
            chunks.append(data)


def _request_headers(request: Any) -> dict[str, str]:
    """Lower-case headers of a runtime request; on workerd straight from the JS Headers in one
    conversion (the SDK's ``request.headers`` builds an email.message first)."""
    js_object = getattr(request, "js_object", None)
    if js_object is None or _JsResponse is None:
        return _headers(request.headers)
    return _js_headers(js_object.headers)


def _js_headers(headers: Any) -> dict[str, str]:
    """Lower-case pairs of a JS ``Headers`` in one conversion (a mapping under CPython)."""
    if _JsResponse is None:
        return _headers(headers)
    return _headers(_JsObject.fromEntries(headers).to_py())


async def read_request(request: Any) -> Request:
    """The runtime request as a `Request` whose body is streamed on demand (see RequestBody)."""
    method = str(request.method).upper()
    stream = None if method in ("GET", "HEAD") else RequestBody(request)
    return Request(method, str(request.url), _request_headers(request), stream=stream)


def to_runtime_response(response: Response) -> Any:
    """The runtime's Response for our `Response` (a `workers.Response` outside workerd).

    A UTF-8 body that says its content-type crosses as text: the runtime takes a string in
    one conversion, while bytes cost a buffer proxy per response (several times as much in
    workerd). Other bodies cross as bytes, so the runtime never adds a content-type.
    """
    body: str | bytes | None = response.body
    if response.status in _NO_BODY_STATUSES:
        body = None
    elif any(name.lower() == "content-type" for name in response.headers):
        with contextlib.suppress(UnicodeDecodeError):
            body = response.body.decode("utf-8")
    headers = dict(response.headers)
    if _JsResponse is None:
        return RuntimeResponse(body, status=response.status, headers=headers)
    init = _to_js(
        {"status": response.status, "headers": headers}, dict_converter=_JsObject.fromEntries
    )
    return _JsResponse.new(_to_js(body) if isinstance(body, bytes) else body, init)


# Set by fetch itself (or meaningless for it): never copied from httpx's request.
_FETCH_SETS = frozenset(
    {"host", "connection", "content-length", "transfer-encoding", "keep-alive", "accept-encoding"}
)
# Describe the bytes on the wire, which fetch has already decoded.
_FETCH_DECODED = frozenset({"content-encoding", "content-length", "transfer-encoding"})
JsFetch = Callable[[str, Any], Awaitable[Any]]


def _timeout_s(extensions: Mapping[str, Any]) -> float | None:
    """One deadline for the whole fetch: the longest of httpx's connect/read/write/pool."""
    timeout = extensions.get("timeout") or {}
    values = [float(v) for v in timeout.values() if v is not None]
    return max(values) if values else None


def _timed_out(exc: Exception) -> bool:
    # AbortSignal.timeout() rejects with a DOMException named TimeoutError.
    name = str(getattr(exc, "name", "") or "")
    return name == "TimeoutError" or "TimeoutError" in str(exc)


def _abort_signal(timeout_s: float | None) -> tuple[Any, Any]:
    """An AbortController (to cancel the fetch) and the signal to give it: the controller's,
    joined with ``AbortSignal.timeout`` when there is a deadline. (None, None) in CPython."""
    if _JsResponse is None:
        return None, None
    controller = _JsAbortController.new()
    if timeout_s is None:
        return controller, controller.signal
    deadline = _JsAbortSignal.timeout(max(1, int(timeout_s * 1000)))
    return controller, _JsAbortSignal.any(_to_js([controller.signal, deadline]))


class FetchTransport(httpx.AsyncBaseTransport):
    """httpx's transport over the runtime's ``fetch``: one subrequest per request.

    The plain httpx wheel otherwise speaks HTTP/1.1 itself over Pyodide's socket emulation
    (httpcore, h11, anyio and an SSL context per client: most of a miss's CPU on workerd).
    The timeout becomes an ``AbortSignal``; a fetch that fails raises httpx's ``ConnectError``,
    one that runs out of time ``ReadTimeout``, as the socket transport would; a cancelled
    request (``asyncio.wait_for`` around it) aborts its fetch. Redirects are answered, not
    followed (``redirect: "manual"``, httpx's default: a credential header never follows one
    elsewhere); the body arrives decoded, so its encoding headers are dropped.
    """

    def __init__(self, fetch: JsFetch | None = None) -> None:
        self._fetch = fetch or _js_fetch
        if self._fetch is None:
            raise RuntimeError("FetchTransport needs the Workers runtime (or a fetch to call)")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        init: dict[str, Any] = {
            "method": request.method,
            "headers": [
                [k, v] for k, v in request.headers.multi_items() if k.lower() not in _FETCH_SETS
            ],
            "redirect": "manual",
        }
        body = await request.aread()
        if body:
            init["body"] = body if _JsResponse is None else _to_js(body)
        controller, signal = _abort_signal(_timeout_s(request.extensions))
        if signal is not None:
            init["signal"] = signal
        try:
            raw = await self._fetch(str(request.url), _js_object(init))
            content = bytes((await raw.arrayBuffer()).to_bytes())
        except asyncio.CancelledError:
            if controller is not None:
                controller.abort()  # the subrequest stops too, not only this coroutine
            raise
        except JsError as exc:  # a rejected fetch: named as httpx's own transport would
            message = f"fetch {request.method} {request.url.host}: {getattr(exc, 'name', exc)}"
            if _timed_out(exc):
                raise httpx.ReadTimeout(message, request=request) from exc
            raise httpx.ConnectError(message, request=request) from exc
        headers = [(k, v) for k, v in _js_headers(raw.headers).items() if k not in _FETCH_DECODED]
        return httpx.Response(int(raw.status), headers=headers, content=content, request=request)


def fetch_client() -> httpx.AsyncClient:
    """On workerd an ``httpx.AsyncClient`` whose requests are runtime fetches (`FetchTransport`,
    no proxy variables read: the runtime has none); in CPython (the harness runs the entry
    modules) a plain one, which respx mocks."""
    if _js_fetch is None:
        return httpx.AsyncClient()
    return httpx.AsyncClient(transport=FetchTransport(), trust_env=False)


class KVBinding:
    """`KVStore` over a KV namespace binding."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    async def get(self, key: str) -> str | None:
        value = await self._raw.get(key)
        return None if value is None else str(value)

    async def get_with_metadata(self, key: str) -> KVEntry:
        got = await self._raw.getWithMetadata(key)
        value = _field(got, "value")
        meta = _field(got, "metadata")
        return KVEntry(
            None if value is None else str(value),
            None if meta is None else to_python(meta),
        )

    async def put(
        self,
        key: str,
        value: str,
        *,
        ttl_s: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        options: dict[str, Any] = {}
        if ttl_s is not None:
            options["expirationTtl"] = int(ttl_s)
        if metadata is not None:
            options["metadata"] = dict(metadata)
        await self._raw.put(key, value, **options)

    async def delete(self, key: str) -> None:
        await self._raw.delete(key)

    async def list(self, prefix: str, *, cursor: str | None = None, limit: int = 1000) -> KVListing:
        options: dict[str, Any] = {"prefix": prefix, "limit": limit}
        if cursor:
            options["cursor"] = cursor
        page = await self._raw.list(**options)
        keys = [str(_field(k, "name")) for k in _field(page, "keys", []) or []]
        done = bool(_field(page, "list_complete", True))
        return KVListing(keys, None if done else _field(page, "cursor"))


class R2Binding:
    """`BlobStore` over an R2 bucket binding."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    async def get(self, key: str) -> Blob | None:
        obj = await self._raw.get(key)
        if obj is None:
            return None
        text = await obj.text()
        meta = to_python(_field(obj, "customMetadata")) or {}
        http = _field(obj, "httpMetadata")
        return Blob(str(text).encode("utf-8"), meta, _field(http, "contentType"))

    async def head(self, key: str) -> Mapping[str, str] | None:
        obj = await self._raw.head(key)
        if obj is None:
            return None
        meta: dict[str, str] = to_python(_field(obj, "customMetadata")) or {}
        return meta

    async def put(
        self,
        key: str,
        value: str | bytes,
        *,
        custom_metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        options: dict[str, Any] = {}
        if custom_metadata is not None:
            options["customMetadata"] = dict(custom_metadata)
        if content_type is not None:
            options["httpMetadata"] = {"contentType": content_type}
        await self._raw.put(key, value, **options)

    async def delete(self, key: str) -> None:
        await self._raw.delete(key)

    async def delete_many(self, keys: Sequence[str]) -> None:
        if keys:
            await self._raw.delete(_js_list(keys))

    async def list(
        self,
        prefix: str,
        *,
        cursor: str | None = None,
        limit: int = 1000,
        include_metadata: bool = False,
    ) -> BlobListing:
        options: dict[str, Any] = {"prefix": prefix, "limit": limit}
        if cursor:
            options["cursor"] = cursor
        if include_metadata:
            options["include"] = _js_list(["customMetadata"])
        page = await self._raw.list(**options)
        objects = list(_field(page, "objects", []) or [])
        keys = [str(_field(o, "key")) for o in objects]
        metadata: dict[str, Mapping[str, str]] = {}
        if include_metadata:
            for key, obj in zip(keys, objects, strict=True):
                metadata[key] = to_python(_field(obj, "customMetadata")) or {}
        truncated = bool(_field(page, "truncated", False))
        return BlobListing(keys, _field(page, "cursor") if truncated else None, metadata)


class ServiceBinding:
    """`Service` over a service binding (HTTP with an absolute URL, or RPC).

    A call that throws (a JS error: the callee crashed, the connection was lost) is
    translated here into ``UpstreamError(name, None, ...)``, so callers handle a broken
    binding like any other failing dependency. Cancellation is never caught.
    """

    def __init__(self, raw: Any, name: str = "service") -> None:
        self._raw = raw
        self._name = name

    def _failed(self, what: str, exc: Exception) -> UpstreamError:
        return UpstreamError(self._name, None, f"binding {what} failed ({type(exc).__name__})")

    async def fetch(self, request: Request) -> Response:
        options: dict[str, Any] = {"method": request.method, "headers": dict(request.headers)}
        if request.body:
            try:
                options["body"] = request.body.decode("utf-8")
            except UnicodeDecodeError:
                options["body"] = request.body
        try:
            resp = await self._raw.fetch(request.url, **options)
            body = await resp.bytes()
            return Response(int(resp.status), bytes(body), _headers(resp.headers))
        except Exception as exc:
            raise self._failed("fetch", exc) from exc

    async def call(self, method: str, *args: Any) -> Any:
        try:
            result = await getattr(self._raw, method)(*args)
        except Exception as exc:
            raise self._failed(f"call {method}", exc) from exc
        return to_python(result)


class DurableObjectBinding:
    """`ObjectNamespace` over a Durable Object namespace binding.

    ``get_by_name`` gives the object's stub as a `ServiceBinding` (RPC through ``call``;
    a call that throws becomes ``UpstreamError(<binding name>, None, ...)``).
    """

    def __init__(self, raw: Any, name: str = "durable_object") -> None:
        self._raw = raw
        self._name = name

    def get_by_name(self, name: str) -> ServiceBinding:
        return ServiceBinding(self._raw.getByName(name), self._name)


class QueueBinding:
    """`QueueProducer` over a ``[[queues.producers]]`` binding.

    The body crosses as a JS object (structured clone); a send that throws becomes
    ``UpstreamError(<binding name>, None, ...)`` so the caller can keep the work for a cron.
    """

    def __init__(self, raw: Any, name: str = "queue") -> None:
        self._raw = raw
        self._name = name

    async def send(self, body: dict[str, Any], *, delay_s: int = 0) -> None:
        try:
            if delay_s > 0:
                await self._raw.send(_js_object(body), delaySeconds=int(delay_s))
            else:
                await self._raw.send(_js_object(body))
        except Exception as exc:
            raise UpstreamError(self._name, None, f"send: {type(exc).__name__}: {exc}") from exc

    async def send_batch(self, bodies: Sequence[dict[str, Any]]) -> None:
        try:
            await self._raw.sendBatch(_js_list([{"body": _js_object(b)} for b in bodies]))
        except Exception as exc:
            raise UpstreamError(self._name, None, f"sendBatch: {type(exc).__name__}") from exc


class RuntimeMessage:
    """`QueueMessage` over a delivered message: the body as plain data (a JsDict, or a JS
    object converted with ``to_py``), ``attempts`` from 1, ``ack``/``retry``."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        body = raw.body
        if hasattr(body, "to_py"):
            body = body.to_py()
        self.body = to_python(body)
        self.attempts = int(raw.attempts)

    def ack(self) -> None:
        self._raw.ack()

    def retry(self, delay_s: int = 0) -> None:
        if delay_s > 0:
            self._raw.retry(delaySeconds=int(delay_s))
        else:
            self._raw.retry()


def read_batch(batch: Any) -> tuple[str, list[RuntimeMessage]]:
    """A delivered batch: its queue's name and its messages."""
    return str(batch.queue), [RuntimeMessage(m) for m in batch.messages]


def _js_list(values: Sequence[Any]) -> Any:
    """A JS array of ``values``, dicts in it as JS objects (a list crosses into JS as a proxy
    otherwise); a plain list under CPython, where the fakes take Python lists."""
    if _JsResponse is None:
        return list(values)
    return _to_js(list(values), dict_converter=_JsObject.fromEntries)


def _js_object(body: dict[str, Any]) -> Any:
    """``body`` as a JS object (the runtime's send() and fetch() options; a plain dict under
    CPython, where the fakes take Python dicts)."""
    if _JsResponse is None:
        return body
    return _to_js(body, dict_converter=_JsObject.fromEntries)


def _sql_value(value: Any) -> SqlValue:
    if value is None or isinstance(value, int | float | str | bytes):
        return value
    if isinstance(value, memoryview):  # a BLOB arrives as an ArrayBuffer
        return value.tobytes()
    if type(value).__name__ in ("JsNull", "JsUndefined"):  # older SDKs pass JS null through
        return None
    raise TypeError(f"unexpected SQL value of type {type(value).__name__}")


class SqlBinding:
    """`SqlStore` over a Durable Object's ``ctx.storage.sql``.

    Rows are JS objects read by attribute (older SDKs) or dict subclasses (newer ones);
    both become plain dicts here, one key per ``columnNames`` entry.
    """

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def execute(self, sql: str, *params: SqlValue) -> list[dict[str, SqlValue]]:
        cursor = self._raw.exec(sql, *params)
        columns = [str(c) for c in cursor.columnNames]
        return [
            {
                c: _sql_value(row[c] if isinstance(row, Mapping) else getattr(row, c))
                for c in columns
            }
            for row in cursor.toArray()
        ]


class RuntimeRateLimit:
    """`RateLimitBinding` over a ``[[ratelimits]]`` binding (``limit({key})``).

    A binding that throws is logged and treated as allowing the call: a limiter outage must
    not take the API down with it.
    """

    def __init__(self, raw: Any, name: str) -> None:
        self._raw = raw
        self._name = name

    async def allow(self, key: str) -> bool:
        try:
            outcome = await self._raw.limit(key=key)
        except Exception as exc:
            print(
                json.dumps(
                    {
                        "level": "warning",
                        "event": "ratelimit.unavailable",
                        "binding": self._name,
                        "error": type(exc).__name__,
                    }
                )
            )
            return True
        return bool(_field(outcome, "success", True))


class EnvMemo:
    """An isolate's bindings and vars, each looked up once.

    They do not change while the isolate lives, but the runtime hands every request a new
    wrapper of ``env``, and a look-up through it probes the binding's type each time (about
    a dozen calls into JS for a KV namespace). An entry module keeps one per isolate and
    passes it to each request's `RuntimeEnv`.
    """

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def lookup(self, env: Any, name: str) -> Any:
        """``env.<name>`` (None when absent), from the first request that asked."""
        try:
            return self._values[name]
        except KeyError:
            value = self._values[name] = getattr(env, name, None)
            return value


class RuntimeEnv:
    """`WorkerEnv` over the runtime's ``env`` and ``ctx`` (bindings and vars through ``memo``,
    when given: looked up once per isolate)."""

    def __init__(
        self, env: Any, ctx: Any, *, clocks: Clocks | None = None, memo: EnvMemo | None = None
    ) -> None:
        self._env = env
        self._ctx = ctx
        self._memo = memo
        self.clocks = clocks or current_clocks()

    def _binding(self, name: str) -> Any:
        if self._memo is not None:
            return self._memo.lookup(self._env, name)
        return getattr(self._env, name, None)

    def var(self, name: str, default: str) -> str:
        value = self._binding(name)
        return default if value is None else str(value)

    def kv(self, name: str) -> KVBinding | None:
        raw = self._binding(name)
        return None if raw is None else KVBinding(raw)

    def r2(self, name: str) -> R2Binding | None:
        raw = self._binding(name)
        return None if raw is None else R2Binding(raw)

    def service(self, name: str) -> ServiceBinding | None:
        raw = self._binding(name)
        return None if raw is None else ServiceBinding(raw, name)

    def rate_limit(self, name: str) -> RuntimeRateLimit | None:
        raw = self._binding(name)
        return None if raw is None else RuntimeRateLimit(raw, name)

    def durable_object(self, name: str) -> DurableObjectBinding | None:
        raw = self._binding(name)
        return None if raw is None else DurableObjectBinding(raw, name)

    def queue(self, name: str) -> QueueBinding | None:
        raw = self._binding(name)
        return None if raw is None else QueueBinding(raw, name)

    async def secret(self, name: str) -> str | None:
        """A Secrets Store binding (``await get()``) or a plain secret string."""
        raw = self._binding(name)
        if raw is None or isinstance(raw, str):
            return raw or None
        try:
            value = await raw.get()
        except Exception:  # not in the store: an unset optional secret, same as no binding
            log.debug("secret %s is not set in the Secrets Store", name)
            return None
        return str(value) if value else None

    def wait_until(self, work: Coroutine[Any, Any, None]) -> None:
        self._ctx.waitUntil(_guarded(work))


async def _guarded(work: Coroutine[Any, Any, None]) -> None:
    try:
        await work
    except Exception as exc:  # background work has no caller to report to: log it
        print(json.dumps({"level": "error", "event": "background.failed", "error": repr(exc)}))
