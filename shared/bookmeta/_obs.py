"""Observability: JSON log lines with a request id, and per-isolate counters and latency.

The request id arrives in ``x-request-id`` (or is made here) and is forwarded on every
call over a service binding, so one id follows a request through all three workers.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._clock import Clock
from ._env import Service
from ._http import Request, Response

REQUEST_ID_HEADER = "x-request-id"
RESPONSE_TIME_HEADER = "x-response-time"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

Sink = Callable[[str], None]


def _stdout(line: str) -> None:
    sys.stdout.write(line + "\n")


def request_id_from(headers: Mapping[str, str]) -> str:
    """The caller's request id when it is sane, else a new one."""
    rid = headers.get(REQUEST_ID_HEADER, "")
    return rid if _SAFE_ID.match(rid) else uuid.uuid4().hex


@dataclass(slots=True)
class Latency:
    """Count, sum, max and errors of timed calls, in milliseconds."""

    count: int = 0
    errors: int = 0
    sum_ms: float = 0.0
    max_ms: float = 0.0

    def record(self, ms: float, *, ok: bool) -> None:
        """Add one observation."""
        self.count += 1
        self.sum_ms += ms
        self.max_ms = max(self.max_ms, ms)
        if not ok:
            self.errors += 1

    def snapshot(self) -> dict[str, float | int]:
        """JSON-able figures, with the mean."""
        mean = self.sum_ms / self.count if self.count else 0.0
        return {
            "count": self.count,
            "errors": self.errors,
            "sum_ms": round(self.sum_ms, 3),
            "max_ms": round(self.max_ms, 3),
            "mean_ms": round(mean, 3),
        }


@dataclass(slots=True)
class Metrics:
    """Per-isolate counters and latencies (isolates come and go: figures are since start)."""

    counters: dict[str, int] = field(default_factory=dict)
    latency: dict[str, Latency] = field(default_factory=dict)

    def incr(self, name: str, by: int = 1) -> None:
        """Add to a counter."""
        self.counters[name] = self.counters.get(name, 0) + by

    def observe(self, name: str, ms: float, *, ok: bool = True) -> None:
        """Record a latency under ``name`` (e.g. ``binding.ISBNDB_WORKER``)."""
        self.latency.setdefault(name, Latency()).record(ms, ok=ok)

    def snapshot(self) -> dict[str, Any]:
        """JSON-able view for ``/metrics``."""
        return {
            "counters": dict(sorted(self.counters.items())),
            "latency": {k: v.snapshot() for k, v in sorted(self.latency.items())},
        }


@dataclass(slots=True)
class Log:
    """Writes one JSON object per line, stamped with worker and request id."""

    worker: str
    request_id: str
    sink: Sink = _stdout

    def event(self, event: str, *, level: str = "info", **fields: Any) -> None:
        """Log ``event`` with ``fields``; values must not carry secrets."""
        record = {"level": level, "worker": self.worker, "rid": self.request_id, "event": event}
        record.update(fields)
        self.sink(json.dumps(record, ensure_ascii=False, default=str, separators=(",", ":")))

    def warning(self, event: str, **fields: Any) -> None:
        """Log at warning level."""
        self.event(event, level="warning", **fields)

    def error(self, event: str, **fields: Any) -> None:
        """Log at error level."""
        self.event(event, level="error", **fields)


class ObservedService:
    """A `Service` that times every call as ``binding.<NAME>`` and forwards the request id.

    HTTP calls get ``x-request-id`` (``request_id``, set per request) unless they carry one;
    RPC calls cannot carry headers, so only their latency and outcome are recorded. An RPC
    result shaped ``{"error": {"status": >= 500}}`` counts as a failed call.
    """

    def __init__(
        self,
        name: str,
        inner: Service,
        *,
        metrics: Metrics,
        clock: Clock,
        request_id: str | None = None,
    ) -> None:
        self.name = name
        self.request_id = request_id
        self._inner = inner
        self._metrics = metrics
        self._clock = clock

    async def fetch(self, request: Request) -> Response:
        if self.request_id and REQUEST_ID_HEADER not in request.headers:
            headers = {**request.headers, REQUEST_ID_HEADER: self.request_id}
            request = Request(request.method, request.url, headers, request.body)
        started, ok = self._clock(), False
        try:
            response = await self._inner.fetch(request)
            ok = response.status < 500
            return response
        finally:
            self._observe(started, ok)

    async def call(self, method: str, *args: Any) -> Any:
        started, ok = self._clock(), False
        try:
            result = await self._inner.call(method, *args)
            ok = not _is_server_error(result)
            return result
        finally:
            self._observe(started, ok)

    def _observe(self, started: float, ok: bool) -> None:
        self._metrics.observe(f"binding.{self.name}", (self._clock() - started) * 1000.0, ok=ok)


def _is_server_error(result: Any) -> bool:
    error = result.get("error") if isinstance(result, Mapping) else None
    return isinstance(error, Mapping) and int(error.get("status") or 500) >= 500
