"""The one exception tree of bookmeta.

Foreign errors (httpx, JSON, runtime) are translated at the edge with ``raise ... from exc``.

::

    BookmetaError
    ├── InvalidISBN (ValueError)      input is not a valid ISBN-10/13
    ├── InvalidInput (ValueError)     a parameter is malformed or out of range (``param``)
    │   └── PayloadTooLarge           a request body is over its route's limit (``max_bytes``)
    ├── ConfigError                   a var is malformed: the deployment's fault (``name``)
    ├── UpstreamError                 a provider failed (``provider``, ``status``)
    │   └── RateLimited               the provider said 429 (``retry_after_s``)
    ├── CircuitOpen                   the breaker for a dependency fails fast (``retry_after_s``)
    ├── GuardRefused                  our own guard refused a call before it was made
    │   └── QuotaExhausted            the key's daily quota (or its share of it) is spent
    └── TooManyRequests               a per-client limit refused the caller (``retry_after_s``)

A ``GuardRefused`` call never reached the provider: it is not retried, and a circuit breaker
records no outcome for it (it proves nothing about the provider's health).
"""

from __future__ import annotations

# N818 (Error suffix) is waived below: these names are the public vocabulary of the API.


class BookmetaError(Exception):
    """Base of every error raised by bookmeta."""


class InvalidISBN(BookmetaError, ValueError):  # noqa: N818
    """The input is not a valid ISBN-10 or ISBN-13."""


class InvalidInput(BookmetaError, ValueError):  # noqa: N818
    """A parameter is malformed or out of range; ``param`` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


class PayloadTooLarge(InvalidInput):
    """A request body is longer than ``max_bytes`` (declared or counted); answered as a 413.

    Raised before the body is read when its Content-Length says so, else as soon as the bytes
    read so far pass the limit: the rest is never read.
    """

    def __init__(self, max_bytes: int, *, declared: int | None = None) -> None:
        size = f"is {declared} bytes" if declared is not None else "is larger than that"
        super().__init__("body", f"the limit is {max_bytes} bytes; this body {size}")
        self.max_bytes = max_bytes
        self.declared = declared


class ConfigError(BookmetaError):
    """A worker var is malformed; ``name`` names it. Answered as a 500, not a 400."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


class UpstreamError(BookmetaError):
    """A provider call failed; ``status`` is None when no HTTP response arrived."""

    def __init__(self, provider: str, status: int | None, message: str) -> None:
        super().__init__(
            f"{provider}: {message}" if status is None else f"{provider} {status}: {message}"
        )
        self.provider = provider
        self.status = status
        self.message = message


class RateLimited(UpstreamError):  # noqa: N818
    """The provider refused with 429; ``retry_after_s`` is its Retry-After, if any."""

    def __init__(
        self,
        provider: str,
        message: str = "rate limited",
        *,
        retry_after_s: float | None = None,
        status: int | None = 429,
    ) -> None:
        super().__init__(provider, status, message)
        self.retry_after_s = retry_after_s


class CircuitOpen(BookmetaError):  # noqa: N818
    """The circuit breaker ``name`` is open; retry after ``retry_after_s`` seconds."""

    def __init__(self, name: str, retry_after_s: float) -> None:
        super().__init__(f"circuit {name!r} is open; retry after {retry_after_s:.1f}s")
        self.name = name
        self.retry_after_s = retry_after_s


class GuardRefused(BookmetaError):  # noqa: N818
    """A guard in front of ``provider`` refused the call before it was made.

    ``reason`` says why (``"rate"``: no slot within the caller's wait; ``"unavailable"``: the
    guard could not be asked); ``retry_after_s`` is when asking again makes sense.
    """

    def __init__(
        self, provider: str, reason: str, message: str, *, retry_after_s: float | None = None
    ) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.reason = reason
        self.message = message
        self.retry_after_s = retry_after_s


class QuotaExhausted(GuardRefused):
    """The daily quota of ``provider``'s key (or the caller's share of it) is spent.

    ``retry_after_s`` runs until the quota resets (00:00 UTC for ISBNdb).
    """

    def __init__(
        self, provider: str, message: str = "daily quota spent", *, retry_after_s: float | None
    ) -> None:
        super().__init__(provider, "quota", message, retry_after_s=retry_after_s)


class TooManyRequests(BookmetaError):  # noqa: N818
    """The caller passed its own rate limit (``scope`` says which one): answered as a 429."""

    def __init__(self, scope: str, retry_after_s: float) -> None:
        super().__init__(f"rate limit for {scope} reached; retry after {retry_after_s:.0f}s")
        self.scope = scope
        self.retry_after_s = retry_after_s
