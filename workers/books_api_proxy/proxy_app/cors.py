"""CORS for browser clients: allowed origins from ``CORS_ALLOWED_ORIGINS`` (``*`` or a list)."""

from __future__ import annotations

from collections.abc import Sequence

from bookmeta import Request, Response, error_response

ALLOW_METHODS = "GET, OPTIONS"
ALLOW_HEADERS = "content-type, x-request-id"
EXPOSE_HEADERS = "x-cache, x-response-time, x-request-id, retry-after"
MAX_AGE_S = 86_400


def allowed_origin(origins: Sequence[str], origin: str | None) -> str | None:
    """The ``Access-Control-Allow-Origin`` value for ``origin``, or None when it is refused."""
    if "*" in origins:
        return "*"
    if origin and origin.rstrip("/") in origins:
        return origin
    return None


def cors_headers(origins: Sequence[str], origin: str | None) -> dict[str, str]:
    """Headers to add to an actual (non-preflight) response."""
    headers: dict[str, str] = {}
    if "*" not in origins:
        headers["vary"] = "Origin"
    allow = allowed_origin(origins, origin)
    if allow is not None:
        headers["access-control-allow-origin"] = allow
        headers["access-control-expose-headers"] = EXPOSE_HEADERS
    return headers


def preflight(origins: Sequence[str], request: Request) -> Response:
    """Answer ``OPTIONS``: 204 with the allowances, or 403 JSON for a refused origin."""
    origin = request.header("origin")
    allow = allowed_origin(origins, origin)
    if allow is None:
        return error_response(403, "cors_forbidden", "origin not allowed")
    headers = {
        "access-control-allow-origin": allow,
        "access-control-allow-methods": ALLOW_METHODS,
        "access-control-allow-headers": ALLOW_HEADERS,
        "access-control-max-age": str(MAX_AGE_S),
    }
    if "*" not in origins:
        headers["vary"] = "Origin"
    return Response(204, b"", headers)
