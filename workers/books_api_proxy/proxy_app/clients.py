"""Who is calling, and whether they may: per-client limits on the public edge.

The rule (README "Per-client limits"):

* A request that carries no ``CF-Connecting-IP`` did not come from the internet: Cloudflare's
  edge sets that header on every public request (a client cannot remove or forge it), and a
  service-binding call (the warmer) has none. Such **internal** calls, and every RPC call,
  are never limited.
* A public request with ``Authorization: Bearer <key>`` where the key is one of the
  ``PROXY_APP_KEYS`` secret's comma-separated keys is counted per **app** (its own, higher
  limits); an unknown key is refused (401), never silently demoted to the IP limits.
* Any other public request is counted per **IP**.
* Every public request counts against the scope's request limit (``LIMIT_IP_REQUESTS`` /
  ``LIMIT_APP_REQUESTS``); a cache miss, which costs upstream calls, counts once more against
  the tighter miss limit (``LIMIT_IP_MISSES`` / ``LIMIT_APP_MISSES``) before it calls anyone.

The limits themselves are Cloudflare Rate Limiting bindings (``[[ratelimits]]`` in the config:
limit per 10 or 60 s period), counted across isolates. A missing binding means "no limit".
A caller a limit refused is remembered by the isolate (`Refusals`) until the end of the window
that refused it: its further requests are refused without asking the binding again (a flood
from one refused client costs this isolate no binding call and no cache read).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from bookmeta import Request, TooManyRequests, WorkerEnv

APP_KEYS_SECRET = "PROXY_APP_KEYS"
# Scope -> the Rate Limiting binding that counts it.
REQUEST_LIMITS = {"ip": "LIMIT_IP_REQUESTS", "app": "LIMIT_APP_REQUESTS"}
MISS_LIMITS = {"ip": "LIMIT_IP_MISSES", "app": "LIMIT_APP_MISSES"}
LIMIT_PERIOD_S = 60.0  # every limit's `simple.period` (a test checks the configs)
REFUSALS_MAX = 10_000  # callers remembered per isolate; the oldest are forgotten first


class Scope(StrEnum):
    """How a caller is counted."""

    INTERNAL = "internal"
    IP = "ip"
    APP = "app"


@dataclass(frozen=True, slots=True)
class Client:
    """A caller: its scope and the key its counts are kept under (never a raw app key)."""

    scope: Scope
    key: str = ""

    @property
    def limited(self) -> bool:
        return self.scope is not Scope.INTERNAL


INTERNAL = Client(Scope.INTERNAL)


class UnknownAppKey(Exception):  # noqa: N818
    """A bearer token that is not one of the configured app keys."""


def parse_app_keys(raw: str | None) -> tuple[str, ...]:
    """The ``PROXY_APP_KEYS`` secret: comma-separated keys, blanks dropped."""
    return tuple(k.strip() for k in (raw or "").split(",") if k.strip())


def _bearer(request: Request) -> str | None:
    header = request.header("authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _key_id(app_key: str) -> str:
    # Counts are keyed by a digest: the key itself never reaches the limiter or a log line.
    return hashlib.sha256(app_key.encode("utf-8")).hexdigest()[:16]


def identify(request: Request, app_keys: tuple[str, ...]) -> Client:
    """The caller of ``request`` (see the module docstring).

    Raises:
        UnknownAppKey: a public request's bearer token is not a configured app key.
    """
    ip = (request.header("cf-connecting-ip") or "").strip()
    if not ip:
        return INTERNAL
    token = _bearer(request)
    if token is None:
        return Client(Scope.IP, f"ip:{ip}")
    for known in app_keys:
        if hmac.compare_digest(token.encode("utf-8"), known.encode("utf-8")):
            return Client(Scope.APP, f"app:{_key_id(known)}")
    raise UnknownAppKey


class Refusals:
    """Callers a limit refused, each until the end of the window that refused it (per isolate).

    The bindings count in fixed windows of ``period_s`` on the clock (``now // period``), so a
    refused caller stays refused until its window ends: asking again before then would cost a
    binding call and change nothing. No clock of its own: the caller passes ``now``;
    ``on_remembered`` is called for each refusal answered from memory (a metric).
    """

    def __init__(
        self,
        *,
        period_s: float = LIMIT_PERIOD_S,
        max_entries: int = REFUSALS_MAX,
        on_remembered: Callable[[], None] = lambda: None,
    ) -> None:
        self.period_s = period_s
        self._max = max_entries
        self._on_remembered = on_remembered
        self._until: dict[tuple[str, str], float] = {}

    def __len__(self) -> int:
        return len(self._until)

    def until(self, binding: str, key: str, now: float) -> float | None:
        """When ``key``'s refusal by ``binding`` ends, or None when it is not refused now."""
        until = self._until.get((binding, key))
        if until is None:
            return None
        if until <= now:
            del self._until[(binding, key)]
            return None
        self._on_remembered()
        return until

    def remember(self, binding: str, key: str, now: float) -> float:
        """Remember that ``binding`` refused ``key`` in the window holding ``now`` (the time the
        binding was asked); the end of that window."""
        until = (now // self.period_s + 1) * self.period_s
        self._until.pop((binding, key), None)  # re-inserted last: the dict stays in time order
        while len(self._until) >= self._max:
            self._forget_oldest(now)
        self._until[(binding, key)] = until
        return until

    def _forget_oldest(self, now: float) -> None:
        # Entries are in insertion order and so in window order: the expired ones come first;
        # when none has expired the oldest refusal goes. Amortized O(1) per refusal.
        oldest = next(iter(self._until))
        del self._until[oldest]
        while self._until:
            entry = next(iter(self._until))
            if self._until[entry] > now:
                break
            del self._until[entry]


class Gate:
    """The limits of one request's caller over the env's Rate Limiting bindings."""

    def __init__(self, env: WorkerEnv, client: Client, refusals: Refusals) -> None:
        self._env = env
        self.client = client
        self._refusals = refusals  # the isolate's
        self._admission: asyncio.Future[None] | None = None

    def start_request(self) -> None:
        """Count this request in the background; ``admitted`` and ``admit_miss`` await it."""
        if self.client.limited and self._admission is None:
            self._admission = asyncio.ensure_future(self.admit_request())

    async def admitted(self) -> None:
        """Wait for the request's count (started by ``start_request``, else counted now).

        Raises:
            TooManyRequests: the caller's request limit is spent for this period.
        """
        if self._admission is None:
            await self.admit_request()
            return
        await asyncio.shield(self._admission)

    def remembered(self) -> TooManyRequests | None:
        """The refusal of this request's count that the isolate remembers, else None (no
        binding call: checked before the route runs, so a refused caller costs no read)."""
        if not self.client.limited:
            return None
        binding = REQUEST_LIMITS[self.client.scope.value]
        until = self._refusals.until(binding, self.client.key, self._env.clocks.wall())
        return None if until is None else self._refusal("requests", until)

    def _refusal(self, what: str, until: float) -> TooManyRequests:
        # Retry-After: the end of the refusing window (whole seconds, at least 1).
        retry_after = max(1.0, math.ceil(until - self._env.clocks.wall()))
        return TooManyRequests(f"{self.client.scope.value} {what}", retry_after)

    async def _take(self, binding: str, what: str) -> None:
        key = self.client.key
        asked_at = self._env.clocks.wall()
        until = self._refusals.until(binding, key, asked_at)
        if until is None:
            limiter = self._env.rate_limit(binding)
            if limiter is None or await limiter.allow(key):
                return
            # The window of the question, not of the answer: a reply that arrives after the
            # boundary must not close the client's next window too.
            until = self._refusals.remember(binding, key, asked_at)
        raise self._refusal(what, until)

    async def admit_request(self) -> None:
        """Count one request.

        Raises:
            TooManyRequests: the caller's request limit is spent for this period.
        """
        if self.client.limited:
            await self._take(REQUEST_LIMITS[self.client.scope.value], "requests")

    async def admit_miss(self) -> None:
        """Count one cache miss (called before any upstream call).

        Raises:
            TooManyRequests: the caller's request or miss limit is spent for this period.
        """
        if self.client.limited:
            await self.admitted()
            await self._take(MISS_LIMITS[self.client.scope.value], "cache misses")
