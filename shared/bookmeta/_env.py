"""What a worker app needs from its environment, as small protocols.

`bookmeta.runtime.RuntimeEnv` implements `WorkerEnv` over the real runtime; tests reach
the same adapter through the strict fakes in `tests/harness`. Time comes from `Clocks`,
which tests replace for a block of code with `use_clocks`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ._clock import Clock, Sleep
from ._errors import ConfigError
from ._http import Request, Response
from ._stores import BlobStore, KVStore


@dataclass(frozen=True, slots=True)
class Clocks:
    """Wall-clock epoch seconds (persisted stamps), monotonic seconds (intervals), sleep."""

    wall: Clock = time.time
    monotonic: Clock = time.monotonic
    sleep: Sleep = asyncio.sleep


_REAL_CLOCKS = Clocks()
_CLOCKS: ContextVar[Clocks | None] = ContextVar("bookmeta_clocks", default=None)


def current_clocks() -> Clocks:
    """The clocks in force: real ones unless a test installed others with `use_clocks`."""
    return _CLOCKS.get() or _REAL_CLOCKS


@contextlib.contextmanager
def use_clocks(clocks: Clocks) -> Iterator[Clocks]:
    """Install ``clocks`` for the enclosed block (tests), restoring the previous ones."""
    token = _CLOCKS.set(clocks)
    try:
        yield clocks
    finally:
        _CLOCKS.reset(token)


class Service(Protocol):
    """A service binding: HTTP over the binding (absolute URL) or an RPC method call."""

    async def fetch(self, request: Request) -> Response: ...

    async def call(self, method: str, *args: Any) -> Any: ...


class ObjectNamespace(Protocol):
    """A Durable Object namespace binding: a stub per object name (RPC via ``call``)."""

    def get_by_name(self, name: str) -> Service: ...


class RateLimitBinding(Protocol):
    """Cloudflare's Rate Limiting binding: one more call for ``key``, allowed or not.

    Counted across isolates by Cloudflare (per location, eventually consistent within a
    location); the limit and period are set in the binding's config, not here.
    """

    async def allow(self, key: str) -> bool: ...


class QueueProducer(Protocol):
    """A Queues producer binding: ``send`` one JSON-able message, visible after ``delay_s``."""

    async def send(self, body: dict[str, Any], *, delay_s: int = 0) -> None: ...

    async def send_batch(self, bodies: Sequence[dict[str, Any]]) -> None: ...


class QueueMessage(Protocol):
    """One delivered message: its body (plain data), delivery count, and its fate."""

    body: Any
    attempts: int

    def ack(self) -> None: ...

    def retry(self, delay_s: int = 0) -> None: ...


class WorkerEnv(Protocol):
    """Bindings, vars, secrets and background work of one invocation."""

    clocks: Clocks

    def var(self, name: str, default: str) -> str: ...

    def kv(self, name: str) -> KVStore | None: ...

    def r2(self, name: str) -> BlobStore | None: ...

    def service(self, name: str) -> Service | None: ...

    def rate_limit(self, name: str) -> RateLimitBinding | None: ...
    def durable_object(self, name: str) -> ObjectNamespace | None: ...

    def queue(self, name: str) -> QueueProducer | None: ...

    async def secret(self, name: str) -> str | None: ...

    def wait_until(self, work: Coroutine[Any, Any, None]) -> None: ...


def int_var(
    env: WorkerEnv,
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """An integer var; a malformed value raises ConfigError naming the var."""
    raw = env.var(name, str(default)).strip()
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"var {name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(name, f"var {name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(name, f"var {name} must be <= {maximum}, got {value}")
    return value


S = TypeVar("S")
_UNSET = "\x00unset"  # an absent var (NUL never occurs in a wrangler var)


class SettingsCache(Generic[S]):
    """Settings parsed from vars once per isolate, or the ConfigError parsing raised.

    Keyed by the raw values of ``names`` (every var ``parse`` reads), so a changed var is
    parsed again. A ConfigError is kept without its traceback (no frame, nor its env, stays
    alive) and returned, not raised, so each request can report it.
    """

    def __init__(self, names: Sequence[str], parse: Callable[[WorkerEnv], S]) -> None:
        self.names = tuple(names)
        self._parse = parse
        self._cached: tuple[tuple[str, ...], S | ConfigError] | None = None

    def get(self, env: WorkerEnv) -> S | ConfigError:
        """The settings for ``env``, or the ConfigError that its vars cause."""
        values = tuple(env.var(name, _UNSET) for name in self.names)
        cached = self._cached
        if cached is None or cached[0] != values:
            try:
                parsed: S | ConfigError = self._parse(env)
            except ConfigError as exc:
                parsed = ConfigError(exc.name, str(exc))  # no traceback or context: no env kept
            cached = self._cached = (values, parsed)
        return cached[1]


class SecretCache:
    """Secrets read at most once per ``ttl_s`` per isolate: a Secrets Store read is I/O.

    ``/health`` reports whether a key is set and every miss needs it; without this, each of
    those requests waits on the store. A rotated or newly set secret is seen within
    ``ttl_s``; an unset one is remembered (as None) for as long. ``clock`` gives monotonic
    seconds.
    """

    def __init__(self, *, ttl_s: float = 60.0, clock: Clock = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._values: dict[str, tuple[str | None, float]] = {}

    async def get(self, env: WorkerEnv, name: str) -> str | None:
        """``await env.secret(name)``, or its value read less than ``ttl_s`` ago."""
        now = self._clock()
        cached = self._values.get(name)
        if cached is not None and now < cached[1]:
            return cached[0]
        value = await env.secret(name)
        self._values[name] = (value, now + self.ttl_s)
        return value
