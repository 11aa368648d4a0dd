"""Settings of the ISBNdb worker, read from env vars (pure: no I/O, no secrets)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from bookmeta import ConfigError, Purpose, WorkerEnv, int_var

from .policy import Limits

WORKER = "isbndb_worker"
VERSION = "1.0.0"
DEFAULT_BASE_URL = "https://api2.isbndb.com"
API_KEY_SECRET = "ISBNDB_API_KEY"
GUARD_BINDING = "ISBNDB_GUARD"  # the key guard's Durable Object namespace (policy.py)
CACHE_BINDING = "ISBNDB_CACHE"  # KV shared by every isolate (shared_cache.py)

# Hard limits of this worker's own API (not configurable: they bound memory and CPU).
MAX_ISBNS_PER_REQUEST = 1000
MAX_AUTHOR_CHARS = 200
MAX_PAGE = 10_000  # ISBNdb stops paging at 10,000 results
MAX_BODY_BYTES = 256 * 1024

# In-isolate caches: ISBNdb data changes slowly; a 404 may only mean "not indexed yet".
BOOK_TTL_S = 24 * 3600.0
AUTHOR_TTL_S = 3600.0
NOT_FOUND_TTL_S = 900.0  # must stay <= 1 h
BOOK_CACHE_ENTRIES = 2000
AUTHOR_CACHE_ENTRIES = 200

# KV shared by every isolate (shared_cache.py): longer than the LRU, since it outlives isolates.
BOOK_KV_TTL_S = 7 * 86_400
AUTHOR_KV_TTL_S = 86_400
NOT_FOUND_KV_TTL_S = 900  # KV's minimum is 60 s; must stay <= 1 h like NOT_FOUND_TTL_S
KV_READS_PER_CALL = 400  # the runtime allows 1,000 KV operations per invocation
KV_WRITES_PER_CALL = 400

# ISBNdb Basic: 1 request/s. Daily quotas are not published reliably (REFERENCE.md): set
# ISBNDB_DAILY_QUOTA to what `GET /key` reports for the key; the reserve matches the
# warmer's ISBNDB_DAILY_BUDGET.
DEFAULT_LIMITS = Limits(rate_per_s=1, daily_quota=2000, warm_reserve=1000)

# How long a caller waits for a slot of the key guard before it is refused (503 rate_limited).
# Public searches wait longer than warming: under contention they can queue behind warming's
# slots, warming cannot queue that deep, so background work yields the key's rate to people
# waiting (bench: `make bench`, key guard). 3 s leaves a public search most of the proxy's 8 s
# provider timeout; 2 s fits warm_isbns (inside the same timeout) and the warmer's own calls.
SLOT_MAX_WAIT_S = {Purpose.PUBLIC: 3.0, Purpose.WARM: 2.0}

# Upstream calls: kept well under the callers' own timeouts.
TIMEOUT_S = 8.0
RETRY_ATTEMPTS = 3
RETRY_AFTER_CAP_S = 5.0
RETRY_DEADLINE_S = 12.0
BREAKER_FAILURES = 3
BREAKER_RESET_S = 30.0


# Every var `Settings.from_env` reads (a test pins it): their raw values key the isolate's copy.
VAR_NAMES = (
    "ISBNDB_BASE_URL",
    "ISBNDB_RATE_PER_S",
    "ISBNDB_DAILY_QUOTA",
    "ISBNDB_WARM_RESERVE",
    "MAX_BOOKS_PER_AUTHOR",
    "ISBNDB_BULK_LIMIT",
)


@dataclass(frozen=True, slots=True)
class Settings:
    """What the worker reads from its vars."""

    base_url: str = DEFAULT_BASE_URL
    limits: Limits = DEFAULT_LIMITS
    max_books_per_author: int = 50
    bulk_limit: int = 100

    @classmethod
    def from_env(cls, env: WorkerEnv) -> Settings:
        """Parse the vars.

        Raises:
            ConfigError: a var is malformed (it names the var).
        """
        base_url = env.var("ISBNDB_BASE_URL", DEFAULT_BASE_URL).strip().rstrip("/")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ConfigError("ISBNDB_BASE_URL", f"var ISBNDB_BASE_URL is not a URL: {base_url!r}")
        quota = int_var(env, "ISBNDB_DAILY_QUOTA", DEFAULT_LIMITS.daily_quota, minimum=1)
        limits = Limits(
            rate_per_s=int_var(
                env, "ISBNDB_RATE_PER_S", DEFAULT_LIMITS.rate_per_s, minimum=1, maximum=100
            ),
            daily_quota=quota,
            warm_reserve=int_var(
                env, "ISBNDB_WARM_RESERVE", DEFAULT_LIMITS.warm_reserve, minimum=0, maximum=quota
            ),
        )
        return cls(
            base_url=base_url,
            limits=limits,
            max_books_per_author=int_var(env, "MAX_BOOKS_PER_AUTHOR", 50, minimum=1),
            bulk_limit=int_var(env, "ISBNDB_BULK_LIMIT", 100, minimum=1),
        )
