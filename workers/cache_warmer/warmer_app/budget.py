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
import secrets
from collections.abc import Awaitable, Mapping, Sequence
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
    ObjectNamespace,
    QueueProducer,
    Request,
    Response,
    Service,
    UpstreamError,
)

T = TypeVar("T")
# The daily budgets: three providers' calls, and the KV writes warming causes (the Free plan
# allows 1,000 KV writes a day per account: the proxy's cache entries, the isbndb worker's).
PROVIDERS = ("isbndb", "google", "openlibrary", "kv_writes")
USAGE_TTL_S = 3 * 86400
MAX_USAGE_RECORDS = 1000  # one KV list page


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

    async def delete_many(self, keys: Sequence[str]) -> None:
        self._meter.spend("r2.delete")
        await self._inner.delete_many(keys)

    async def list(
        self,
        prefix: str,
        *,
        cursor: str | None = None,
        limit: int = 1000,
        include_metadata: bool = False,
    ) -> BlobListing:
        self._meter.spend("r2.list")
        return await self._inner.list(
            prefix, cursor=cursor, limit=limit, include_metadata=include_metadata
        )


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


class MeteredQueue:
    """A QueueProducer that counts every send (one subrequest per send or sendBatch)."""

    def __init__(self, name: str, inner: QueueProducer, meter: Meter) -> None:
        self._name = name
        self._inner = inner
        self._meter = meter

    async def send(self, body: dict[str, Any], *, delay_s: int = 0) -> None:
        self._meter.spend(f"{self._name}.send")
        await self._inner.send(body, delay_s=delay_s)

    async def send_batch(self, bodies: Sequence[dict[str, Any]]) -> None:
        self._meter.spend(f"{self._name}.sendBatch")
        await self._inner.send_batch(bodies)


class MeteredObjects:
    """An ObjectNamespace whose stubs count every call (as MeteredService)."""

    def __init__(self, name: str, inner: ObjectNamespace, meter: Meter, *, timeout_s: float):
        self._name = name
        self._inner = inner
        self._meter = meter
        self._timeout_s = timeout_s

    def get_by_name(self, name: str) -> Service:
        return MeteredService(
            self._name, self._inner.get_by_name(name), self._meter, timeout_s=self._timeout_s
        )


# -- daily upstream usage --------------------------------------------------------------------


@dataclass
class DailyUsage:
    """Upstream calls spent (or estimated) today, per provider.

    ``calls`` is the day's total as this run sees it (the records read at its start plus what
    it spent since); ``spent`` is what this run spent (its ``UsageLedger`` records it).
    """

    day: str
    calls: dict[str, int] = field(default_factory=dict)
    spent: dict[str, int] = field(default_factory=dict)
    saturated: bool = False

    def left(self, budgets: Mapping[str, int]) -> dict[str, int]:
        """Calls left today per provider (none when the day's records could not all be read)."""
        if self.saturated:
            return dict.fromkeys(PROVIDERS, 0)
        return {p: max(0, budgets.get(p, 0) - self.calls.get(p, 0)) for p in PROVIDERS}

    def calls_from(self, calls: Mapping[str, int]) -> None:
        """Count calls another run (or an earlier one) recorded."""
        for provider, n in calls.items():
            if n:
                self.calls[provider] = self.calls.get(provider, 0) + int(n)

    def add(self, calls: Mapping[str, int]) -> None:
        """Record calls this run spent."""
        for provider, n in calls.items():
            if n:
                self.calls[provider] = self.calls.get(provider, 0) + int(n)
                self.spent[provider] = self.spent.get(provider, 0) + int(n)


# Every run that spent calls writes records of its own, so concurrent runs (the cron and a
# POST /libraries/{id}/warm) never overwrite each other's counts. The counts are part of the
# key, so one KV list reads the whole day (one subrequest, no get per record):
#     usage:{YYYY-MM-DD}:{run id}.{seq}:isbndb=2,google=1,openlibrary=1
# A run's records are cumulative and the day's total counts each run's highest ``seq`` only
# (see UsageLedger): the first is written before the calls it counts. A record without
# ``.{seq}`` (earlier versions) counts on its own; ``usage:{YYYY-MM-DD}`` alone is
# the single read-modify-write record of older versions, still counted (one get).


def usage_prefix(day: str) -> str:
    """The KV key prefix of a day's usage records (also the legacy single record's key)."""
    return f"usage:{day}"


def usage_record_key(
    day: str, record_id: str, calls: Mapping[str, int], seq: int | None = None
) -> str:
    """The KV key of a usage record; the counts are readable from the key alone.

    With ``seq``, the record is number ``seq`` of run ``record_id`` (cumulative: the highest
    counts); without, a record of its own.
    """
    counts = ",".join(f"{p}={int(calls.get(p, 0))}" for p in PROVIDERS)
    run = record_id if seq is None else f"{record_id}.{seq}"
    return f"{usage_prefix(day)}:{run}:{counts}"


def _record_calls(key: str, prefix: str) -> tuple[str, int, dict[str, int]]:
    """A record key's run id, sequence number and counts (malformed parts are ignored)."""
    run, _, counts = key[len(prefix) + 1 :].partition(":")
    record_id, dot, seq = run.rpartition(".")
    if not dot or not (seq.isascii() and seq.isdigit() and len(seq) <= 9):
        record_id, seq = run, "0"
    calls: dict[str, int] = {}
    for part in counts.split(","):
        provider, _, n = part.partition("=")
        if provider in PROVIDERS and n.isascii() and n.isdigit() and len(n) <= 9:
            calls[provider] = calls.get(provider, 0) + int(n)
    return record_id, int(seq), calls


async def load_usage(kv: KVStore, day: str) -> DailyUsage:
    """Today's usage: the sum of the day's records (one list; empty when nothing was recorded).

    Of one run's records only the highest ``seq`` counts (they are cumulative). More records
    than one list page holds cannot be summed in one subrequest: the budgets are then treated
    as spent for the rest of the day.
    """
    prefix = usage_prefix(day)
    page = await kv.list(prefix, limit=MAX_USAGE_RECORDS)
    usage = DailyUsage(day, saturated=page.cursor is not None)
    latest: dict[str, tuple[int, dict[str, int]]] = {}
    for key in page.keys:
        if key == prefix:
            raw = await kv.get(key)  # the legacy single record
            data = json.loads(raw) if raw else {}
            usage.calls_from({str(k): int(v) for k, v in data.get("calls", {}).items()})
        elif key.startswith(prefix + ":"):
            record_id, seq, calls = _record_calls(key, prefix)
            if record_id not in latest or seq > latest[record_id][0]:
                latest[record_id] = (seq, calls)
    for _seq, calls in latest.values():
        usage.calls_from(calls)
    return usage


class UsageLedger:
    """One run's usage record: written before the upstream calls it counts, settled after.

    ``cover(estimate)`` makes sure the run's latest record counts what it has spent plus the
    worst case of what it is about to spend (writing a new record only when the latest does
    not already); ``settle()`` writes the real spend. A run's records are cumulative and the
    day counts its highest only, so a run that dies (an exception, a CPU-limit kill) has
    counted its calls already, at worst over, never under; one that ends counts them exactly.
    Each write is one KV put (one subrequest).
    """

    def __init__(
        self, kv: KVStore, usage: DailyUsage, clocks: Clocks, *, record_id: str | None = None
    ) -> None:
        self._kv = kv
        self.usage = usage
        self._clocks = clocks
        self.record_id = record_id or secrets.token_hex(6)
        self.seq = -1
        self.committed: dict[str, int] = {}

    def covers(self, estimate: Mapping[str, int]) -> bool:
        """The latest record already counts what was spent plus ``estimate``."""
        return all(
            self.usage.spent.get(p, 0) + int(estimate.get(p, 0)) <= self.committed.get(p, 0)
            for p in PROVIDERS
        )

    async def cover(self, estimate: Mapping[str, int]) -> None:
        """Write a record counting the spend so far plus ``estimate``, unless one does."""
        if self.covers(estimate):
            return
        await self._write(
            {p: self.usage.spent.get(p, 0) + int(estimate.get(p, 0)) for p in PROVIDERS}
        )

    async def settle(self) -> None:
        """Write the run's real spend, unless the latest record says exactly that."""
        spent = {p: self.usage.spent.get(p, 0) for p in PROVIDERS}
        if spent == {p: self.committed.get(p, 0) for p in PROVIDERS}:
            return
        await self._write(spent)

    async def _write(self, counts: dict[str, int]) -> None:
        seq = self.seq + 1
        record = {
            "day": self.usage.day,
            "run": self.record_id,
            "seq": seq,
            "calls": counts,
            "writtenAt": self._clocks.wall(),
        }
        key = usage_record_key(self.usage.day, self.record_id, counts, seq)
        await self._kv.put(key, json.dumps(record), ttl_s=USAGE_TTL_S)
        self.seq, self.committed = seq, counts


async def wait_for_write_slot(last_write: float | None, clocks: Clocks) -> None:
    """Sleep until 1 s has passed since ``last_write`` (KV allows 1 write/s per key)."""
    if last_write is None:
        return
    wait = last_write + 1.001 - clocks.wall()  # a hair over 1 s: float sums
    if wait > 0:
        await clocks.sleep(wait)
