"""The key guard's Durable Object without the runtime: SQLite around `policy.decide`.

One object per ISBNdb key (named by `keyguard.guard_name`, a hash of the key). The entry
module's ``IsbndbKeyGuard(DurableObject)`` hands its two RPC methods here:

* ``take(purpose, max_wait_ms)`` -> ``{"granted": True, "waitMs", "slotAt", "usage"}``, or
  ``{"granted": False, "reason": "rate"|"quota"|"invalid"|"config", "retryAfterMs",
  "message", "usage"}`` (``usage`` is `policy.usage_view`, absent on ``config``);
* ``usage()`` -> ``{"usage": ...}`` (or ``{"error": ...}`` on ``config``).

The object handles one call at a time and ``take`` reads, decides and writes its one row
with no await in between, so two callers can never get the same slot or the last unit of
the day's quota. Limits come from the worker's own vars (the object shares its env).
"""

from __future__ import annotations

import json
import math
from typing import Any

from bookmeta import ConfigError, InvalidInput, SqlStore, WorkerEnv, parse_purpose

from .config import Settings
from .policy import Grant, GuardState, decide, usage_view

SCHEMA = """
CREATE TABLE IF NOT EXISTS guard_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    day TEXT NOT NULL,
    public_used INTEGER NOT NULL,
    warm_used INTEGER NOT NULL,
    slots TEXT NOT NULL
)
"""
SAVE = """
INSERT INTO guard_state (id, day, public_used, warm_used, slots) VALUES (1, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET day = excluded.day, public_used = excluded.public_used,
    warm_used = excluded.warm_used, slots = excluded.slots
"""
LOAD = "SELECT day, public_used, warm_used, slots FROM guard_state WHERE id = 1"
MAX_WAIT_MS = 60_000


def _ms(seconds: float) -> int:
    return max(0, math.ceil(seconds * 1000.0))


class KeyGuardObject:
    """The guard's state and operations over its SQLite database."""

    def __init__(self, sql: SqlStore, env: WorkerEnv) -> None:
        self._sql = sql
        self._clock = env.clocks.wall
        self._config_error: ConfigError | None = None
        try:
            self._limits = Settings.from_env(env).limits
        except ConfigError as exc:
            self._config_error = exc
            self._limits = Settings().limits
        sql.execute(SCHEMA)

    def _load(self) -> GuardState:
        rows = self._sql.execute(LOAD)
        if not rows:
            return GuardState()
        row = rows[0]
        slots = json.loads(str(row["slots"]))
        return GuardState(
            day=str(row["day"]),
            public=int(row["public_used"] or 0),
            warm=int(row["warm_used"] or 0),
            slots=tuple(float(s) for s in slots),
        )

    def _save(self, state: GuardState) -> None:
        slots = json.dumps([round(s, 6) for s in state.slots])
        self._sql.execute(SAVE, state.day, state.public, state.warm, slots)

    def _config(self) -> dict[str, Any] | None:
        if self._config_error is None:
            return None
        return {
            "granted": False,
            "reason": "config",
            "retryAfterMs": None,
            "message": str(self._config_error),
        }

    def take(self, purpose: Any, max_wait_ms: Any) -> dict[str, Any]:
        """A slot for one ISBNdb call of ``purpose``, waiting at most ``max_wait_ms``."""
        config = self._config()
        if config is not None:
            return config
        now = self._clock()
        state = self._load()
        try:
            wanted = parse_purpose(purpose)
            wait_ms = _wait_ms(max_wait_ms)
        except InvalidInput as exc:
            return {
                "granted": False,
                "reason": "invalid",
                "retryAfterMs": None,
                "message": str(exc),
                "usage": usage_view(state, self._limits, now),
            }
        after, decision = decide(state, self._limits, wanted, now, max_wait_s=wait_ms / 1000.0)
        if after != state:
            self._save(after)
        usage = usage_view(after, self._limits, now)
        if isinstance(decision, Grant):
            return {
                "granted": True,
                "waitMs": _ms(decision.wait_s),
                "slotAt": decision.slot_at,
                "usage": usage,
            }
        return {
            "granted": False,
            "reason": decision.reason,
            "retryAfterMs": _ms(decision.retry_after_s),
            "message": decision.message,
            "usage": usage,
        }

    def usage(self) -> dict[str, Any]:
        """Today's counts and what is left (``{"usage": ...}``)."""
        config = self._config()
        if config is not None:
            return {"error": config["message"]}
        return {"usage": usage_view(self._load(), self._limits, self._clock())}


def _wait_ms(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise InvalidInput("max_wait_ms", f"must be a number of milliseconds, got {raw!r:.40}")
    return int(min(max(raw, 0), MAX_WAIT_MS))
