"""Bearer-token check for the write endpoints (constant-time comparison)."""

from __future__ import annotations

import hmac

from bookmeta import Request, Response, error_response

_SCHEME = "bearer "


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    raw = request.header("authorization")
    if raw is None or raw[: len(_SCHEME)].lower() != _SCHEME:
        return None
    token = raw[len(_SCHEME) :].strip()
    return token or None


def is_authorized(request: Request, expected: str | None) -> bool:
    """True when a token is configured and the request carries exactly it.

    With no configured token every write is refused: an unset secret must not open the door.
    """
    given = bearer_token(request)
    if not expected or given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def unauthorized(expected: str | None) -> Response:
    """The 401 for a refused write; says whether the worker has a token at all."""
    message = (
        "this endpoint requires Authorization: Bearer <WARMER_ADMIN_TOKEN>"
        if expected
        else "writes are disabled: WARMER_ADMIN_TOKEN is not configured"
    )
    return error_response(401, "unauthorized", message, headers={"www-authenticate": "Bearer"})
