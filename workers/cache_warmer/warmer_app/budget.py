"""Budgets of one run: a subrequest meter over every binding, and daily upstream usage.

Subrequest accounting (decided here, documented in the README of the issue): every call that
leaves the isolate counts as one subrequest, whatever the platform bills it as: a service-binding
fetch or RPC call, and every KV or R2 operation (get, put, delete, list). The meter wraps the
bindings, so the count is measured, not estimated; exceeding the limit raises BudgetExhausted
before the call is made, so a run can never go over it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bookmeta import (
    Blob,
    BlobListing,
    BlobStore,
    Clocks,
    KVEntry,
    KVListing,
    KVStore,
    Request,
    Response,
    Service,
    UpstreamError,
)

T = TypeVar("T")
PROVIDERS = ("isbndb", "google", "openlibrary")
USAGE_TTL_S = 3 * 86400


class BudgetExhausted(Exception):  # noqa: N818 (a state, like CircuitOpen)
    """A call would exceed the run's subrequest limit; the planner should have prevented it."""


@dataclass
class Meter:
    """Counts subrequests against ``limit``, per target (``kv.get``, ``BOOKS_API_PROXY.rpc``...)."""

    limit: int
    used: int = 0
    by_target: dict[str, int] = field(default_factory=dict)

    @property
    def remaining(self) -> int:
        """Subrequests left."""
        return self.limit - self.used

    def spend(self, target: str) -> None:
        """Count one subrequest, or raise BudgetExhausted when none is left."""
        if self.used >= self.limit:
            raise BudgetExhausted(f"subrequest budget of {self.limit} spent (next: {target})")
        self.used += 1
        self.by_target[target] = self.by_target.get(target, 0) + 1


class MeteredKV:
    """A KVStore that counts every operation."""

    def __init__(self, inner: KVStore, meter: Meter) -> None:
        self._inner = inner
        self._meter = meter

    async def get(self, key: str) -> str | None:
        self._meter.spend("kv.get")
        return await self._inner.get(key)

    async def get_with_metadata(self, key: str) -> KVEntry:
        self._meter.spend("kv.get")
        return await self._inner.get_with_metadata(key)

    async def put(
        self,
        key: str,
        value: str,
        *,
        ttl_s: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self._meter.spend("kv.put")
        await self._inner.put(key, value, ttl_s=ttl_s, metadata=metadata)

    async def delete(self, key: str) -> None:
        self._meter.spend("kv.delete")
        await self._inner.delete(key)

    async def list(self, prefix: str, *, cursor: str | None = None, limit: int = 1000) -> KVListing:
        self._meter.spend("kv.list")
        return await self._inner.list(prefix, cursor=cursor, limit=limit)


class MeteredBlobs:
    """A BlobStore that counts every operation."""

    def __init__(self, inner: BlobStore, meter: Meter) -> None:
        self._inner = inner
        self._meter = meter

    async def get(self, key: str) -> Blob | None:
        self._meter.spend("r2.get")
        return await self._inner.get(key)

    async def head(self, key: str) -> Mapping[str, str] | None:
        self._meter.spend("r2.head")
        return await self._inner.head(key)

    async def put(
        self,
        key: str,
        value: str | bytes,
        *,
        custom_metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        self._meter.spend("r2.put")
        await self._inner.put(
            key, value, custom_metadata=custom_metadata, content_type=content_type
        )

    async def delete(self, key: str) -> None:
        self._meter.spend("r2.delete")
        await self._inner.delete(key)

    async def list(
        self, prefix: str, *, cursor: str | None = None, limit: int = 1000
    ) -> BlobListing:
        self._meter.spend("r2.list")
        return await self._inner.list(prefix, cursor=cursor, limit=limit)


class MeteredService:
    """A Service binding that counts every fetch and RPC call and bounds how long each takes.

    A call that gives no answer within ``timeout_s`` raises UpstreamError (no status), so a
    hung binding costs one unit attempt, not the whole cron run.
    """

    def __init__(self, name: str, inner: Service, meter: Meter, *, timeout_s: float) -> None:
        self._name = name
        self._inner = inner
        self._meter = meter
        self._timeout_s = timeout_s

    async def _bounded(self, work: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(work, self._timeout_s)
        except TimeoutError:
            raise UpstreamError(
                self._name, None, f"no answer within {self._timeout_s:g}s"
            ) from None

    async def fetch(self, request: Request) -> Response:
        self._meter.spend(f"{self._name}.fetch")
        return await self._bounded(self._inner.fetch(request))

    async def call(self, method: str, *args: Any) -> Any:
        self._meter.spend(f"{self._name}.rpc")
        return await self._bounded(self._inner.call(method, *args))


# -- daily upstream usage --------------------------------------------------------------------


@dataclass
class DailyUsage:
    """Upstream calls spent (or estimated) today, per provider; one KV key per UTC day."""

    day: str
    calls: dict[str, int] = field(default_factory=dict)
    written_at: float | None = None
    changed: bool = False

    def left(self, budgets: Mapping[str, int]) -> dict[str, int]:
        """Calls left today per provider."""
        return {p: max(0, budgets.get(p, 0) - self.calls.get(p, 0)) for p in PROVIDERS}

    def add(self, calls: Mapping[str, int]) -> None:
        """Record spent calls."""
        for provider, n in calls.items():
            if n:
                self.calls[provider] = self.calls.get(provider, 0) + int(n)
                self.changed = True


def usage_key(day: str) -> str:
    """The KV key of a day's usage."""
    return f"usage:{day}"


async def load_usage(kv: KVStore, day: str) -> DailyUsage:
    """Today's usage (empty when nothing was recorded)."""
    raw = await kv.get(usage_key(day))
    if raw is None:
        return DailyUsage(day)
    data = json.loads(raw)
    calls = {str(k): int(v) for k, v in data.get("calls", {}).items()}
    return DailyUsage(day, calls, float(data["writtenAt"]))


async def save_usage(kv: KVStore, usage: DailyUsage, clocks: Clocks) -> None:
    """Write the usage if it changed, at least 1 s after its previous write (KV's per-key rate)."""
    if not usage.changed:
        return
    await wait_for_write_slot(usage.written_at, clocks)
    now = clocks.wall()
    record = {"day": usage.day, "calls": usage.calls, "writtenAt": now}
    await kv.put(usage_key(usage.day), json.dumps(record), ttl_s=USAGE_TTL_S)
    usage.written_at = now
    usage.changed = False


async def wait_for_write_slot(last_write: float | None, clocks: Clocks) -> None:
    """Sleep until 1 s has passed since ``last_write`` (KV allows 1 write/s per key)."""
    if last_write is None:
        return
    wait = last_write + 1.001 - clocks.wall()  # a hair over 1 s: float sums
    if wait > 0:
        await clocks.sleep(wait)
