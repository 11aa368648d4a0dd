"""Shared core of the book-metadata workers.

One public doorway: the names below. Implementation lives in private modules; the only
module that touches the Workers runtime is `bookmeta.runtime` (imported by entry modules).
"""

from ._breaker import BreakerEvent, BreakerRegistry, BreakerState, CircuitBreaker
from ._cache import CacheEntry, KeyStatus, Lookup, TwoTierCache
from ._clock import Clock, FakeClock, Sleep
from ._env import (
    Clocks,
    RateLimitBinding,
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
    PayloadTooLarge,
    RateLimited,
    TooManyRequests,
    UpstreamError,
)
from ._http import (
    BodyStream,
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
from ._json import MAX_JSON_DEPTH, json_depth, parse_json
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
from ._query import (
    Query,
    QueryKind,
    classify,
    drop_format_chars,
    normalize_display,
    normalize_key,
)
from ._ratelimit import RateLimiter
from ._retry import RetryEvent, RetryPolicy, retry, testing_mode
from ._rpc import refuse_extra_args
from ._serve import serve
from ._singleflight import SingleFlight
from ._stores import Blob, BlobListing, BlobStore, KVEntry, KVListing, KVStore
from ._upstream import UpstreamResponse, parse_retry_after, request_json

__all__ = [
    "AUTHOR_PAGE_SIZE",
    "AUTHOR_WARM_MAX_RESULTS",
    "DEFAULT_LANG",
    "KEY_VERSION",
    "MAX_JSON_DEPTH",
    "REQUEST_ID_HEADER",
    "RESPONSE_TIME_HEADER",
    "WARM_ISBNS_MAX",
    "Blob",
    "BlobListing",
    "BlobStore",
    "BodyStream",
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
    "PayloadTooLarge",
    "Query",
    "QueryKind",
    "RateLimitBinding",
    "RateLimited",
    "RateLimiter",
    "Request",
    "Response",
    "RetryEvent",
    "RetryPolicy",
    "Router",
    "Service",
    "SettingsCache",
    "SingleFlight",
    "Sleep",
    "TooManyRequests",
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
    "drop_format_chars",
    "error_response",
    "extract_all",
    "extract_isbn",
    "int_var",
    "is_isbn10",
    "is_isbn13",
    "isbn_key",
    "json_depth",
    "json_response",
    "normalize_display",
    "normalize_key",
    "parse_json",
    "parse_retry_after",
    "refuse_extra_args",
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
