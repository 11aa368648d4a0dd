"""A best-effort lease per job in KV, so two runs (both crons fire at 02:00) never work one job.

Record ``lease:{id}`` = ``{"owner", "until", "writtenAt"}`` with a KV TTL >= 60 s. Acquire: read;
held (``until`` in the future) means busy; otherwise write our unique owner token and re-read to
confirm we won. KV is eventually consistent, so this narrows the race rather than closing it;
unit result keys (written once each, checked by ``catch_up``) keep the damage of a lost race to
at most re-running one unit. Every write waits until 1 s after the previous one (KV's rate).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from bookmeta import Clocks, KVStore

from .budget import wait_for_write_slot

MIN_TTL_S = 60


def lease_key(job_id: str) -> str:
    """KV key of a job's lease."""
    return f"lease:{job_id}"


@dataclass(frozen=True, slots=True)
class Lease:
    """A held lease: our owner token and when we wrote it."""

    job_id: str
    owner: str
    written_at: float
    until: float


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """What the lease key holds."""

    owner: str
    until: float
    written_at: float

    @classmethod
    def parse(cls, raw: str | None) -> LeaseRecord | None:
        """The record, or None for an absent or unreadable one (treated as free)."""
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return cls(str(data["owner"]), float(data["until"]), float(data["writtenAt"]))
        except (ValueError, KeyError, TypeError):
            return None


class Leases:
    """Acquire and release job leases held for ``hold_s`` seconds at most."""

    def __init__(self, kv: KVStore, clocks: Clocks, *, hold_s: float) -> None:
        self._kv = kv
        self._clocks = clocks
        self._hold_s = hold_s

    async def holder(self, job_id: str) -> LeaseRecord | None:
        """The current live lease record, if any."""
        record = LeaseRecord.parse(await self._kv.get(lease_key(job_id)))
        if record is None or record.until <= self._clocks.wall():
            return None
        return record

    async def acquire(self, job_id: str) -> Lease | None:
        """Take the lease, or None when someone holds it (or won the race to it)."""
        key = lease_key(job_id)
        record = LeaseRecord.parse(await self._kv.get(key))
        if record is not None and record.until > self._clocks.wall():
            return None
        await wait_for_write_slot(None if record is None else record.written_at, self._clocks)
        owner = secrets.token_hex(8)
        now = self._clocks.wall()
        until = now + self._hold_s
        await self._write(key, LeaseRecord(owner, until, now))
        confirm = LeaseRecord.parse(await self._kv.get(key))
        if confirm is None or confirm.owner != owner:
            return None
        return Lease(job_id, owner, now, until)

    async def release(self, lease: Lease) -> None:
        """Give the lease back, unless it expired and someone else took it meanwhile."""
        key = lease_key(lease.job_id)
        record = LeaseRecord.parse(await self._kv.get(key))
        if record is None or record.owner != lease.owner:
            return
        await wait_for_write_slot(record.written_at, self._clocks)
        await self._write(key, LeaseRecord(lease.owner, 0.0, self._clocks.wall()))

    async def _write(self, key: str, record: LeaseRecord) -> None:
        value = {"owner": record.owner, "until": record.until, "writtenAt": record.written_at}
        ttl = max(MIN_TTL_S, int(self._hold_s) + MIN_TTL_S)
        await self._kv.put(key, json.dumps(value), ttl_s=ttl)
