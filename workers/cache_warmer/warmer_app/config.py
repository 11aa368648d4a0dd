"""Settings of the cache warmer, parsed from the worker's vars (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from bookmeta import WARM_ISBNS_MAX, WorkerEnv, int_var

WORKER = "cache_warmer"
VERSION = "1.0.0"
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DailyBudgets:
    """Upstream calls per provider per UTC day that warming may spend (estimates, see planner)."""

    isbndb: int = 1000
    google: int = 800
    openlibrary: int = 5000
    kv_writes: int = 900  # KV_DAILY_WRITE_BUDGET: under the Free plan's 1,000 a day

    def as_dict(self) -> dict[str, int]:
        """Budget name -> calls (or KV writes) per day."""
        return {
            "isbndb": self.isbndb,
            "google": self.google,
            "openlibrary": self.openlibrary,
            "kv_writes": self.kv_writes,
        }


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the warmer reads from vars; defaults match wrangler.toml.d/cache_warmer.toml."""

    max_subrequests: int = 45
    max_seconds: int = 20
    max_upload_bytes: int = 10 * MIB
    isbn_chunk_size: int = 100
    verify_keys_per_call: int = 20
    call_timeout_ms: int = 15_000
    daily: DailyBudgets = DailyBudgets()

    @classmethod
    def from_env(cls, env: WorkerEnv) -> Settings:
        """Parse the vars; a malformed or too-small value raises ConfigError naming the var."""
        return cls(
            max_subrequests=int_var(env, "WARM_MAX_SUBREQUESTS", 45, minimum=15),
            max_seconds=int_var(env, "WARM_MAX_SECONDS", 20, minimum=1),
            max_upload_bytes=int_var(env, "MAX_UPLOAD_BYTES", 10 * MIB, minimum=1),
            isbn_chunk_size=int_var(env, "WARM_ISBN_CHUNK", 100, minimum=1, maximum=WARM_ISBNS_MAX),
            verify_keys_per_call=int_var(env, "VERIFY_KEYS_PER_CALL", 20, minimum=1),
            call_timeout_ms=int_var(env, "WARM_CALL_TIMEOUT_MS", 15_000, minimum=1),
            daily=DailyBudgets(
                isbndb=int_var(env, "ISBNDB_DAILY_BUDGET", 1000, minimum=0),
                google=int_var(env, "GOOGLE_DAILY_BUDGET", 800, minimum=0),
                openlibrary=int_var(env, "OPEN_LIBRARY_DAILY_BUDGET", 5000, minimum=0),
                kv_writes=int_var(env, "KV_DAILY_WRITE_BUDGET", 900, minimum=0),
            ),
        )
