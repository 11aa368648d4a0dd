"""Two-tier cache: KV (hot) over R2 (cold), with stale-while-revalidate and negative entries.

Lifetime of an entry written at ``t``::

    t ........ t+hot_ttl ................ t+cold_ttl ........
    fresh (KV, or R2 promoted to KV) | stale (served, refreshed) | expired (fallback only)

KV expires entries itself (``expirationTtl``); R2 has no TTL, so its expiry lives in
custom metadata and is checked on read. Negative entries ("not found") live in KV only,
for ``negative_ttl_s``.

A loader may instead raise ``Provisional``: an answer worth serving but not keeping (a partial
answer while a provider is down). It is stored in KV only, for ``ttl_s`` (KV's 60 s minimum
upwards), flagged with its ``note``, and never over a full entry: when any full entry exists,
even past its cold TTL, that entry is served instead (as ``stale``). A provisional entry is
served while fresh; once past it, the next read loads again, so the full answer replaces it as
soon as the missing provider answers.

Writes made on behalf of a read (storing a loaded value, promoting an R2 hit to KV) are best
effort: scheduled through ``schedule`` (``waitUntil``) so the answer never waits on them, and
a tier that refuses the write (KV allows one write per second per key) is logged and reported
through ``on_write_failure``, never raised. ``set``/``set_negative`` still raise: their
callers asked for the write.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ._clock import Clock, wall_clock
from ._singleflight import SingleFlight
from ._stores import KV_MIN_TTL_S, KV_VALUE_MAX_BYTES, BlobStore, KVStore

log = logging.getLogger("bookmeta.cache")

Source = Literal["kv", "r2", "stale", "miss"]
Schedule = Callable[[Coroutine[Any, Any, None]], None]

_ENVELOPE_VERSION = 1


class Provisional(Exception):  # noqa: N818 - a kind of answer, not an error
    """A loader's answer to serve and keep only briefly (see the module docstring).

    ``note`` (JSON-able, e.g. which providers failed) is stored with it and read back with
    every hit; ``ttl_s`` is how long it may be served (at least KV's 60 s).
    """

    def __init__(self, value: Any, note: Mapping[str, Any], ttl_s: float) -> None:
        super().__init__("provisional answer")
        self.value = value
        self.note = dict(note)
        self.ttl_s = max(KV_MIN_TTL_S, math.ceil(ttl_s))


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A cached value as read back; ``value`` is None for a negative entry; ``note`` is set
    for a provisional entry."""

    value: Any
    tier: Literal["kv", "r2"]
    stored_at: float
    fresh_until: float
    expires_at: float
    negative: bool = False
    note: dict[str, Any] | None = None

    def is_fresh(self, now: float) -> bool:
        """Still inside its hot TTL."""
        return now < self.fresh_until

    def is_expired(self, now: float) -> bool:
        """Past its cold TTL: only good as a last-resort fallback."""
        return now >= self.expires_at


@dataclass(frozen=True, slots=True)
class Lookup:
    """The outcome of `TwoTierCache.get_or_load`: the value and which tier answered;
    ``note`` is the provisional answer's note (fresh from the loader, or read back)."""

    value: Any
    source: Source
    negative: bool = False
    note: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CacheWriteFailure:
    """A best-effort write that a tier refused; ``op`` is ``store``, ``negative`` or ``promote``."""

    key: str
    tier: Literal["kv", "r2"]
    op: str
    error: str


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What `TwoTierCache.sweep_expired` did: objects looked at, deleted, where to resume
    (None once the walk reached the end of the cold tier)."""

    scanned: int
    deleted: int
    cursor: str | None


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """Where a key is cached and until when (for verification).

    ``negative``: no tier holds a value, but KV remembers that the key has none (a
    not-found entry, for ``negative_ttl_s``).
    """

    key: str
    tier: Literal["kv", "r2"] | None
    fresh_until: float | None
    expires_at: float | None
    negative: bool = False


Loader = Callable[[], Awaitable[Any]]


class TwoTierCache:
    """KV hot tier over R2 cold tier; either tier may be absent.

    ``loader`` functions return the value to cache, or None for "not found" (cached as a
    negative entry); exceptions propagate after falling back to any expired entry.
    """

    def __init__(
        self,
        hot: KVStore | None,
        cold: BlobStore | None,
        *,
        hot_ttl_s: int = 3600,
        cold_ttl_s: int = 604_800,
        negative_ttl_s: int = 300,
        clock: Clock = wall_clock,
        single_flight: SingleFlight[str, Any] | None = None,
        cold_prefix: str = "cache/",
        on_write_failure: Callable[[CacheWriteFailure], None] | None = None,
    ) -> None:
        if hot_ttl_s < KV_MIN_TTL_S or negative_ttl_s < KV_MIN_TTL_S:
            raise ValueError(f"KV TTLs must be at least {KV_MIN_TTL_S}s")
        if cold_ttl_s < hot_ttl_s:
            raise ValueError("cold_ttl_s must be at least hot_ttl_s")
        self.hot = hot
        self.cold = cold
        self.hot_ttl_s = hot_ttl_s
        self.cold_ttl_s = cold_ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.clock = clock
        self.single_flight: SingleFlight[str, Any] = single_flight or SingleFlight()
        self.cold_prefix = cold_prefix
        self.on_write_failure = on_write_failure

    # -- reads -------------------------------------------------------------------------

    async def get(self, key: str) -> CacheEntry | None:
        """The entry for ``key`` from the first tier that has it (expired entries included)."""
        entry = await self._get_hot(key)
        if entry is not None:
            return entry
        return await self._get_cold(key)

    async def _get_hot(self, key: str) -> CacheEntry | None:
        if self.hot is None:
            return None
        raw = await self.hot.get(key)
        if raw is None:
            return None
        try:
            env = json.loads(raw)
            return CacheEntry(
                value=env.get("v"),
                tier="kv",
                stored_at=float(env["s"]),
                fresh_until=float(env["f"]),
                expires_at=float(env["x"]),
                negative=bool(env.get("n", False)),
                note=env["p"] if isinstance(env.get("p"), dict) else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning(json.dumps({"event": "cache.corrupt", "tier": "kv", "key": key}))
            return None

    async def _get_cold(self, key: str) -> CacheEntry | None:
        if self.cold is None:
            return None
        blob = await self.cold.get(self.cold_prefix + key)
        if blob is None:
            return None
        try:
            meta = blob.custom_metadata
            return CacheEntry(
                value=json.loads(blob.body),
                tier="r2",
                stored_at=float(meta["stored_at"]),
                fresh_until=float(meta["fresh_until"]),
                expires_at=float(meta["expires_at"]),
            )
        except (ValueError, KeyError, TypeError):
            log.warning(json.dumps({"event": "cache.corrupt", "tier": "r2", "key": key}))
            return None

    async def status(self, keys: Sequence[str]) -> list[KeyStatus]:
        """Which tier holds each key and until when, reading metadata only where possible."""
        return list(await asyncio.gather(*(self._status(k) for k in keys)))

    async def _status(self, key: str) -> KeyStatus:
        now = self.clock()
        negative = False
        if self.hot is not None:
            got = await self.hot.get_with_metadata(key)
            meta = got.metadata or {}
            negative = got.value is not None and bool(meta.get("n"))
            provisional = bool(meta.get("p"))
            if got.value is not None and "f" in meta and not negative and not provisional:
                return KeyStatus(key, "kv", float(meta["f"]), float(meta["x"]))
        if self.cold is not None:
            head = await self.cold.head(self.cold_prefix + key)
            if head is not None and "expires_at" in head:
                expires = float(head["expires_at"])
                if expires > now:
                    return KeyStatus(key, "r2", float(head["fresh_until"]), expires)
        return KeyStatus(key, None, None, None, negative)

    # -- upkeep ------------------------------------------------------------------------

    async def sweep_expired(
        self, *, cursor: str | None = None, max_pages: int = 1, page_size: int = 1000
    ) -> SweepReport:
        """Delete cold entries past their cold TTL (R2 keeps objects until deleted).

        Walks the cold prefix ``page_size`` objects per list (custom metadata included, so no
        read per object), from ``cursor``, for at most ``max_pages`` pages, deleting each
        page's expired entries in one operation: at most two subrequests per page. An entry
        whose metadata does not parse is left alone (a read already ignores it; the next store
        replaces it).
        """
        if self.cold is None:
            return SweepReport(0, 0, None)
        now = self.clock()
        scanned = deleted = 0
        for _ in range(max_pages):
            page = await self.cold.list(
                self.cold_prefix, cursor=cursor, limit=page_size, include_metadata=True
            )
            expired = [k for k in page.keys if _expired(page.metadata.get(k), now)]
            if expired:
                await self.cold.delete_many(expired)
            scanned += len(page.keys)
            deleted += len(expired)
            cursor = page.cursor
            if cursor is None:
                break
        log.info(json.dumps({"event": "cache.swept", "scanned": scanned, "deleted": deleted}))
        return SweepReport(scanned, deleted, cursor)

    # -- writes ------------------------------------------------------------------------

    async def set(self, key: str, value: Any) -> None:
        """Store ``value`` in both tiers (R2 only when it is too big for KV).

        Raises:
            Exception: what a tier's binding threw (the first one), after both writes ran.
        """
        await _all(self._writes(key, value).values())

    async def set_negative(self, key: str) -> None:
        """Remember briefly that ``key`` has no result (KV only)."""
        await _all(self._negative_writes(key).values())

    def _writes(self, key: str, value: Any) -> dict[Literal["kv", "r2"], Awaitable[None]]:
        now = self.clock()
        fresh_until = now + self.hot_ttl_s
        expires_at = now + self.cold_ttl_s
        writes: dict[Literal["kv", "r2"], Awaitable[None]] = {}
        if self.hot is not None:
            writes["kv"] = self._put_hot(key, value, now, fresh_until, expires_at, self.hot_ttl_s)
        if self.cold is not None:
            body = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            writes["r2"] = self.cold.put(
                self.cold_prefix + key,
                body,
                content_type="application/json",
                custom_metadata={
                    "stored_at": f"{now:.3f}",
                    "fresh_until": f"{fresh_until:.3f}",
                    "expires_at": f"{expires_at:.3f}",
                    "v": str(_ENVELOPE_VERSION),
                },
            )
        return writes

    def _negative_writes(self, key: str) -> dict[Literal["kv", "r2"], Awaitable[None]]:
        if self.hot is None:
            return {}
        now = self.clock()
        until = now + self.negative_ttl_s
        return {
            "kv": self._put_hot(key, None, now, until, until, self.negative_ttl_s, negative=True)
        }

    async def _put_hot(
        self,
        key: str,
        value: Any,
        now: float,
        fresh_until: float,
        expires_at: float,
        ttl_s: int,
        *,
        negative: bool = False,
        note: Mapping[str, Any] | None = None,
    ) -> None:
        assert self.hot is not None
        env: dict[str, Any] = {"v": value, "s": now, "f": fresh_until, "x": expires_at}
        meta: dict[str, Any] = {"s": round(now, 3), "f": round(fresh_until, 3)}
        meta["x"] = round(expires_at, 3)
        if negative:
            env["n"] = meta["n"] = 1
        if note is not None:
            env["p"] = dict(note)
            meta["p"] = 1
        text = json.dumps(env, ensure_ascii=False, separators=(",", ":"))
        if len(text.encode("utf-8")) > KV_VALUE_MAX_BYTES:
            return  # too big for KV: the R2 copy serves it
        await self.hot.put(
            key,
            text,
            ttl_s=max(KV_MIN_TTL_S, ttl_s),
            metadata=meta,
        )

    async def _promote(self, key: str, entry: CacheEntry) -> None:
        """Copy an R2 entry to KV unless KV already holds one stored as late or later."""
        if self.hot is None:
            return
        try:
            current = await self.hot.get_with_metadata(key)
            stored = (current.metadata or {}).get("s")
            if (
                current.value is not None
                and stored is not None
                and float(stored) >= entry.stored_at
            ):
                return  # another request stored a fresher (or the same) entry meanwhile
            remaining = math.ceil(entry.fresh_until - self.clock())
            await self._put_hot(
                key, entry.value, entry.stored_at, entry.fresh_until, entry.expires_at, remaining
            )
        except Exception as exc:  # best effort: the R2 copy keeps serving
            self._write_failed(key, "kv", "promote", exc)

    async def _store_provisional(self, key: str, answer: Provisional) -> None:
        """Keep a provisional answer in KV for its ``ttl_s``, best effort."""
        if self.hot is None:
            return
        now = self.clock()
        until = now + answer.ttl_s
        try:
            await self._put_hot(
                key, answer.value, now, until, until, answer.ttl_s, note=answer.note
            )
        except Exception as exc:
            self._write_failed(key, "kv", "provisional", exc)

    async def _store(self, key: str, value: Any) -> None:
        """Store a loaded value (or its negative entry), best effort per tier."""
        if value is None:
            op, writes = "negative", self._negative_writes(key)
        else:
            op, writes = "store", self._writes(key, value)
        tiers = list(writes)
        results = await asyncio.gather(*writes.values(), return_exceptions=True)
        for tier, result in zip(tiers, results, strict=True):
            if isinstance(result, Exception):
                self._write_failed(key, tier, op, result)
            elif isinstance(result, BaseException):
                raise result  # cancellation is not a write failure

    def _write_failed(
        self, key: str, tier: Literal["kv", "r2"], op: str, exc: BaseException
    ) -> None:
        failure = CacheWriteFailure(key, tier, op, f"{type(exc).__name__}: {exc}"[:300])
        log.warning(
            json.dumps(
                {
                    "event": "cache.write_failed",
                    "key": key,
                    "tier": tier,
                    "op": op,
                    "error": failure.error,
                }
            )
        )
        if self.on_write_failure is not None:
            self.on_write_failure(failure)

    # -- read-through --------------------------------------------------------------------

    async def get_or_load(self, key: str, loader: Loader, *, schedule: Schedule) -> Lookup:
        """Serve from cache, or load once (single-flight) and serve; storing is background work.

        Stale entries are served at once and refreshed through ``schedule`` (``waitUntil``).
        A loaded value is returned as soon as it is loaded; its store (and an R2 hit's
        promotion to KV) runs through ``schedule``, best effort. When ``loader`` raises, an
        entry of any age is served as stale; without one the error propagates.
        """
        entry = await self.get(key)
        now = self.clock()
        if entry is not None and entry.is_fresh(now):
            if entry.tier == "r2":
                schedule(self._promote(key, entry))
            return Lookup(entry.value, entry.tier, entry.negative, entry.note)
        full = entry if entry is not None and entry.note is None else None
        if full is not None and not full.negative and not full.is_expired(now):
            schedule(self._refresh(key, loader, schedule))
            return Lookup(full.value, "stale")
        keep = full is None  # a provisional answer never replaces a full entry
        try:
            value = await self.single_flight.do(
                key, lambda: self._load(key, loader, schedule, keep_provisional=keep)
            )
        except Provisional as answer:
            if full is not None and not full.negative:
                log.warning(json.dumps({"event": "cache.serve_expired", "key": key}))
                return Lookup(full.value, "stale")
            return Lookup(answer.value, "miss", note=answer.note)
        except Exception:
            if entry is not None and not entry.negative:
                log.warning(json.dumps({"event": "cache.serve_expired", "key": key}))
                return Lookup(entry.value, "stale", note=entry.note)
            raise
        return Lookup(value, "miss", value is None)

    async def _load(
        self, key: str, loader: Loader, schedule: Schedule, *, keep_provisional: bool = False
    ) -> Any:
        # The shared call only loads: a storage error can never fail it (nor make joiners
        # repeat the load). The flight's starter schedules the one store.
        try:
            value = await loader()
        except Provisional as answer:
            if keep_provisional:
                schedule(self._store_provisional(key, answer))
            raise
        schedule(self._store(key, value))
        return value

    async def _refresh(self, key: str, loader: Loader, schedule: Schedule) -> None:
        try:
            await self.single_flight.do(key, lambda: self._load(key, loader, schedule))
        except Exception as exc:  # background work: log, keep the stale entry
            log.warning(
                json.dumps({"event": "cache.refresh_failed", "key": key, "error": repr(exc)})
            )


async def _all(writes: Iterable[Awaitable[None]]) -> None:
    """Await every write; raise the first failure once all have finished."""
    results = await asyncio.gather(*writes, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _expired(meta: Mapping[str, str] | None, now: float) -> bool:
    """True for cold metadata whose ``expires_at`` has passed."""
    try:
        return meta is not None and float(meta["expires_at"]) <= now
    except (KeyError, TypeError, ValueError):
        return False
