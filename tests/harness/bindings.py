"""Fakes of a service binding, a Secrets Store secret, the execution context and the cron."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from workers import FetchResponse, JsDict, Request, Response


class DataCloneError(TypeError):
    """A value that structured clone (RPC) cannot carry."""


def rpc_clone(value: Any, *, path: str = "arg") -> Any:
    """Copy ``value`` as it crosses RPC: dicts become JsDict, bytes memoryview; tuples,
    bytearrays, sets and custom objects raise, as `python_to_rpc` and structured clone do."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple | bytearray):
        raise TypeError(f"{type(value)} cannot be sent over RPC. ({path})")
    if isinstance(value, bytes | memoryview):
        return memoryview(bytes(value))
    if isinstance(value, list):
        return [rpc_clone(v, path=f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = JsDict()
        for k, v in value.items():
            if not isinstance(k, str):
                raise DataCloneError(f"RPC object keys must be strings ({path})")
            out[k] = rpc_clone(v, path=f"{path}.{k}")
        return out
    if inspect.isawaitable(value):
        raise TypeError(f"Awaitable {type(value)} cannot be sent over RPC. ({path})")
    raise DataCloneError(f"{type(value).__name__} could not be cloned over RPC ({path})")


def binding_request(resource: Any, options: dict[str, Any]) -> tuple[str, Request]:
    """The URL and request of a binding's ``fetch(resource, **options)`` (a service binding or a
    Durable Object stub): absolute http(s) URLs only, as the runtime requires."""
    url = resource.url if isinstance(resource, Request) else str(resource)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise TypeError(f"Fetch API cannot load: {url}")
    return url, Request(resource, **options)


def rpc_args(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    """The positional arguments of an RPC call as they arrive: cloned; keywords refused."""
    if kwargs:
        raise TypeError(f"RPC {method}: keyword arguments are not supported; pass positional args")
    return [rpc_clone(a, path=f"{method} arg {i}") for i, a in enumerate(args)]


@dataclass
class FakeSecret:
    """A Secrets Store binding: the value comes from ``await get()`` (each call is I/O, counted
    in ``reads``)."""

    value: str | None
    reads: int = 0

    async def get(self) -> str:
        self.reads += 1
        if self.value is None:
            raise RuntimeError("Secret not found in the store")
        return self.value


@dataclass
class FakeContext:
    """ExecutionContext: ``waitUntil`` collects work the harness awaits after the handler."""

    pending: list[asyncio.Task[Any]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def waitUntil(self, work: Any) -> None:
        if not inspect.isawaitable(work):
            raise TypeError("waitUntil() expects a Promise (an awaitable)")
        self.pending.append(asyncio.ensure_future(work))

    def passThroughOnException(self) -> None:
        """Accepted and ignored, as in the runtime for non-proxied workers."""

    async def drain(self) -> None:
        """Await all background work, including work scheduled while draining."""
        while self.pending:
            batch, self.pending = self.pending, []
            for result in await asyncio.gather(*batch, return_exceptions=True):
                if isinstance(result, BaseException):
                    self.errors.append(result)


@dataclass
class FakeController:
    """ScheduledController: ``cron``, ``scheduledTime`` (ms since epoch), ``noRetry()``."""

    cron: str
    scheduledTime: float
    retry: bool = True

    def noRetry(self) -> None:
        self.retry = False


@dataclass
class Traffic:
    """One call over a binding, as the callee saw it (for security and cost assertions)."""

    caller: str
    binding: str
    kind: str  # "fetch" or "rpc"
    target: str  # URL or method name
    headers: dict[str, str]
    payload: str


Invoke = Callable[[str, Callable[[Any], Coroutine[Any, Any, Any]]], Coroutine[Any, Any, Any]]


class FakeServiceBinding:
    """A service binding: ``fetch(absolute_url, **FetchKwargs)`` or RPC ``await b.method(*args)``.

    Relative URLs, keyword arguments over RPC and non-cloneable values raise, as in the runtime.
    """

    def __init__(self, caller: str, binding: str, service: str, invoke: Invoke, log: list[Traffic]):
        self._caller = caller
        self._binding = binding
        self._service = service
        self._invoke = invoke
        self._log = log

    async def fetch(self, resource: Any, **options: Any) -> FetchResponse:
        url, request = binding_request(resource, options)
        body = request._body
        self._log.append(
            Traffic(
                self._caller,
                self._binding,
                "fetch",
                url,
                dict(request.headers),
                body.decode("utf-8", "replace"),
            )
        )

        async def call(entry: Any) -> Any:
            return await entry.fetch(request)

        response = await self._invoke(self._service, call)
        if not isinstance(response, Response):
            raise TypeError(f"{self._service}: fetch handler did not return a Response")
        return FetchResponse(response._body, response.status, response.headers, url)

    def __getattr__(self, method: str) -> Callable[..., Coroutine[Any, Any, Any]]:
        if method.startswith("_"):
            raise AttributeError(method)

        async def rpc(*args: Any, **kwargs: Any) -> Any:
            cloned = rpc_args(method, args, kwargs)
            self._log.append(Traffic(self._caller, self._binding, "rpc", method, {}, repr(args)))

            async def call(entry: Any) -> Any:
                fn = getattr(type(entry), method, None)
                if fn is None or method in ("fetch", "scheduled") or not callable(fn):
                    raise TypeError(f"The RPC receiver does not implement the method {method!r}.")
                result = getattr(entry, method)(*cloned)
                if inspect.isawaitable(result):
                    result = await result
                return rpc_clone(result, path=f"{method} result")

            return await self._invoke(self._service, call)

        return rpc


@dataclass
class FakeRateLimit:
    """A ``[[ratelimits]]`` binding: ``await limit(key=...)`` -> an outcome with ``success``.

    As strict as the runtime: the key is the only option, passed by keyword (a positional
    dict would reach JS as a Map); ``period`` is 10 or 60 s, counted in fixed windows on the
    system clock. One object per namespace id: workers sharing it share the counts.
    """

    limit_n: int
    period_s: int
    clock: Callable[[], float]
    enforce: bool = True
    counts: dict[tuple[str, int], int] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.period_s not in (10, 60):
            raise ValueError(f"ratelimits period must be 10 or 60, got {self.period_s}")
        if self.limit_n < 1:
            raise ValueError(f"ratelimits limit must be >= 1, got {self.limit_n}")

    async def limit(self, *args: Any, **options: Any) -> Any:
        if args or set(options) != {"key"} or not isinstance(options["key"], str):
            raise TypeError("limit() takes one keyword option: key (a string)")
        key = options["key"]
        self.calls.append(key)
        window = (key, int(self.clock() // self.period_s))
        self.counts[window] = self.counts.get(window, 0) + 1
        success = not self.enforce or self.counts[window] <= self.limit_n
        return _Outcome(success)


@dataclass(frozen=True)
class _Outcome:
    success: bool
