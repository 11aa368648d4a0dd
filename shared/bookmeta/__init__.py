"""Shared core of the book-metadata workers.

One public doorway: the names below. Implementation lives in private modules; the only
module that touches the Workers runtime is `bookmeta.runtime` (imported by entry modules).
"""

from ._breaker import BreakerEvent, BreakerRegistry, BreakerState, CircuitBreaker
from ._cache import CacheEntry, KeyStatus, Lookup, TwoTierCache
from ._clock import Clock, FakeClock, Sleep
from ._env import (
    Clocks,
    SecretCache,
    Service,
    SettingsCache,
    WorkerEnv,
    current_clocks,
    int_var,
    use_clocks,
)
from ._errors import (
    BookmetaError,
    CircuitOpen,
    ConfigError,
    InvalidInput,
    InvalidISBN,
    RateLimited,
    UpstreamError,
)
from ._http import (
    Request,
    Response,
    Router,
    error_response,
    json_response,
    response_for_error,
    retry_after_header,
)
from ._isbn import (
    canonical,
    clean,
    extract_all,
    extract_isbn,
    is_isbn10,
    is_isbn13,
    to_isbn10,
    to_isbn13,
)
from ._keys import (
    AUTHOR_PAGE_SIZE,
    AUTHOR_WARM_MAX_RESULTS,
    DEFAULT_LANG,
    KEY_VERSION,
    WARM_ISBNS_MAX,
    author_warm_key,
    cache_key,
    isbn_key,
    search_key,
)
from ._obs import REQUEST_ID_HEADER, RESPONSE_TIME_HEADER, Log, Metrics, ObservedService
from ._query import Query, QueryKind, classify, normalize_display, normalize_key
from ._ratelimit import RateLimiter
from ._retry import RetryEvent, RetryPolicy, retry, testing_mode
from ._serve import serve
from ._singleflight import SingleFlight
from ._stores import Blob, BlobListing, BlobStore, KVEntry, KVListing, KVStore
from ._upstream import UpstreamResponse, parse_retry_after, request_json

__all__ = [
    "AUTHOR_PAGE_SIZE",
    "AUTHOR_WARM_MAX_RESULTS",
    "DEFAULT_LANG",
    "KEY_VERSION",
    "REQUEST_ID_HEADER",
    "RESPONSE_TIME_HEADER",
    "WARM_ISBNS_MAX",
    "Blob",
    "BlobListing",
    "BlobStore",
    "BookmetaError",
    "BreakerEvent",
    "BreakerRegistry",
    "BreakerState",
    "CacheEntry",
    "CircuitBreaker",
    "CircuitOpen",
    "Clock",
    "Clocks",
    "ConfigError",
    "FakeClock",
    "InvalidISBN",
    "InvalidInput",
    "KVEntry",
    "KVListing",
    "KVStore",
    "KeyStatus",
    "Log",
    "Lookup",
    "Metrics",
    "ObservedService",
    "Query",
    "QueryKind",
    "RateLimited",
    "RateLimiter",
    "Request",
    "Response",
    "RetryEvent",
    "RetryPolicy",
    "Router",
    "SecretCache",
    "Service",
    "SettingsCache",
    "SingleFlight",
    "Sleep",
    "TwoTierCache",
    "UpstreamError",
    "UpstreamResponse",
    "WorkerEnv",
    "author_warm_key",
    "cache_key",
    "canonical",
    "classify",
    "clean",
    "current_clocks",
    "error_response",
    "extract_all",
    "extract_isbn",
    "int_var",
    "is_isbn10",
    "is_isbn13",
    "isbn_key",
    "json_response",
    "normalize_display",
    "normalize_key",
    "parse_retry_after",
    "request_json",
    "response_for_error",
    "retry",
    "retry_after_header",
    "search_key",
    "serve",
    "testing_mode",
    "to_isbn10",
    "to_isbn13",
    "use_clocks",
]
