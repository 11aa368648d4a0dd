"""Failures as the API answers them: one value, rendered as HTTP JSON or as an RPC result.

Bookmeta's exceptions are translated here, at the edge; messages never carry the API key
(upstream messages never include URLs or headers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bookmeta import (
    BookmetaError,
    CircuitOpen,
    ConfigError,
    GuardRefused,
    InvalidInput,
    InvalidISBN,
    PayloadTooLarge,
    QuotaExhausted,
    RateLimited,
    Response,
    UpstreamError,
    error_response,
)

from .config import API_KEY_SECRET, GUARD_BINDING


@dataclass(frozen=True, slots=True)
class Failure:
    """An error answer: HTTP status, stable code, human message, optional Retry-After."""

    status: int
    code: str
    message: str
    retry_after_s: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def retry_after(self) -> float | None:
        """Retry-After in whole seconds (at least 1), as sent in the header."""
        if self.retry_after_s is None:
            return None
        return float(max(1, math.ceil(self.retry_after_s)))

    def response(self) -> Response:
        """The HTTP form: ``{"error": {"code", "message", ...}}`` with Retry-After if any."""
        headers = {} if self.retry_after is None else {"retry-after": str(int(self.retry_after))}
        return error_response(
            self.status, self.code, self.message, headers=headers, details=self.details
        )

    def rpc(self) -> dict[str, Any]:
        """The RPC form: ``{"error": {"code", "message", "status", "retryAfter", ...}}``."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        error.update(self.details)
        error["status"] = self.status
        error["retryAfter"] = self.retry_after
        return {"error": error}


def not_configured() -> Failure:
    """The API key secret is missing (or unusable as a header value)."""
    return Failure(
        503,
        "not_configured",
        f"{API_KEY_SECRET} is not configured: bind it from the Secrets Store "
        "(or set it in .dev.vars for local development)",
    )


def guard_not_bound() -> Failure:
    """The key guard's Durable Object binding is missing: no call may be made without it."""
    return Failure(
        503,
        "not_configured",
        f"{GUARD_BINDING} (the key guard's Durable Object binding) is not configured: add it "
        "and its [[migrations]] new_sqlite_classes to the worker's config",
    )


def not_found(isbn13: str) -> Failure:
    """ISBNdb has no book for ``isbn13``."""
    return Failure(404, "not_found", f"ISBNdb has no book with ISBN {isbn13}")


def config_error(exc: ConfigError) -> Failure:
    """A var is malformed: the worker cannot serve until it is fixed."""
    return Failure(500, "config_error", str(exc), details={"var": exc.name})


def failure_for(exc: BookmetaError) -> Failure:
    """Map bookmeta's exception tree onto the API's answers."""
    if isinstance(exc, PayloadTooLarge):
        details = {"param": exc.param, "limit": exc.max_bytes}
        return Failure(413, "too_large", str(exc), details=details)
    if isinstance(exc, InvalidInput):
        return Failure(400, "invalid_input", str(exc), details={"param": exc.param})
    if isinstance(exc, InvalidISBN):
        return Failure(400, "invalid_isbn", str(exc), details={"param": "isbn"})
    if isinstance(exc, QuotaExhausted):
        return Failure(
            429,
            "quota_exhausted",
            f"{exc.message}; it resets at 00:00 UTC",
            retry_after_s=exc.retry_after_s or 1.0,
            details={"provider": exc.provider},
        )
    if isinstance(exc, GuardRefused):
        code = "rate_limited" if exc.reason == "rate" else "guard_unavailable"
        return Failure(503, code, exc.message, retry_after_s=exc.retry_after_s or 1.0)
    if isinstance(exc, CircuitOpen):
        return Failure(
            503,
            "upstream_unavailable",
            "ISBNdb is failing; the circuit is open, retry later",
            retry_after_s=exc.retry_after_s or 1.0,
        )
    if isinstance(exc, RateLimited):
        return Failure(
            503,
            "rate_limited",
            "ISBNdb rate limit reached after retries; retry later",
            retry_after_s=exc.retry_after_s or 1.0,
        )
    if isinstance(exc, UpstreamError):
        return _upstream_failure(exc)
    return Failure(400, "bad_request", str(exc))


def _upstream_failure(exc: UpstreamError) -> Failure:
    details = {"provider": exc.provider, "upstreamStatus": exc.status}
    if exc.status == 401:
        message = (
            f"ISBNdb rejected the API key (401): check the {API_KEY_SECRET} secret "
            "(the bare key is sent in the Authorization header)"
        )
        return Failure(502, "upstream_auth", message, details=details)
    if exc.status == 403:
        message = (
            "ISBNdb refused access (403): the key's plan may not include the host in "
            "ISBNDB_BASE_URL (Basic: api2.isbndb.com, Premium: api.premium.isbndb.com, "
            "Pro: api.pro.isbndb.com) or the subscription has lapsed"
        )
        return Failure(502, "upstream_forbidden", message, details=details)
    return Failure(502, "upstream_error", str(exc), details=details)
