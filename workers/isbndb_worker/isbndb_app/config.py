"""Settings of the ISBNdb worker, read from env vars (pure: no I/O, no secrets)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from bookmeta import ConfigError, WorkerEnv, int_var

WORKER = "isbndb_worker"
VERSION = "1.0.0"
DEFAULT_BASE_URL = "https://api2.isbndb.com"
API_KEY_SECRET = "ISBNDB_API_KEY"

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

# Upstream calls: kept well under the callers' own timeouts.
TIMEOUT_S = 8.0
RETRY_ATTEMPTS = 3
RETRY_AFTER_CAP_S = 5.0
RETRY_DEADLINE_S = 12.0
BREAKER_FAILURES = 3
BREAKER_RESET_S = 30.0


# Every var `Settings.from_env` reads (a test pins it): their raw values key the isolate's copy.
VAR_NAMES = ("ISBNDB_BASE_URL", "RATE_LIMIT_MS", "MAX_BOOKS_PER_AUTHOR", "ISBNDB_BULK_LIMIT")


@dataclass(frozen=True, slots=True)
class Settings:
    """What the worker reads from its vars."""

    base_url: str = DEFAULT_BASE_URL
    rate_limit_ms: int = 100
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
        return cls(
            base_url=base_url,
            rate_limit_ms=int_var(env, "RATE_LIMIT_MS", 100, minimum=0),
            max_books_per_author=int_var(env, "MAX_BOOKS_PER_AUTHOR", 50, minimum=1),
            bulk_limit=int_var(env, "ISBNDB_BULK_LIMIT", 100, minimum=1),
        )
