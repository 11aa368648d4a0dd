"""The request wrapper every worker shares: request id, timing, logging, last-resort errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ._clock import Clock
from ._http import Request, Response, error_response
from ._obs import REQUEST_ID_HEADER, RESPONSE_TIME_HEADER, Log, Metrics, Sink, request_id_from

Handler = Callable[[Request, Log], Awaitable[Response]]
# On every response, whatever its status or type: a JSON error that echoes input (a 404 for
# /libraries/<script>...) must never be sniffed or rendered as a page. A handler's own value
# wins (the dashboard sends its own CSP).
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
}

Routine = Callable[[Request, Response], bool]
# A routine answer slower than this is logged all the same.
ROUTINE_MAX_MS = 250.0


async def serve(
    request: Request,
    handler: Handler,
    *,
    worker: str,
    metrics: Metrics,
    clock: Clock,
    sink: Sink | None = None,
    routine: Routine | None = None,
) -> Response:
    """Run ``handler`` for ``request``; an unexpected exception becomes a JSON 500 (no trace).

    Every request is counted and timed in ``metrics`` and gets one ``request`` log line,
    except answers ``routine`` calls routine (e.g. a cache hit) that are below 400 and took
    less than ``ROUTINE_MAX_MS``: on workerd a console line costs about as much as the rest
    of such a request, and the platform's invocation log already records each one.
    Every response gets ``SECURITY_HEADERS`` (unless the handler set them), the request id and
    ``x-response-time``.
    """
    rid = request_id_from(request.headers)
    log = Log(worker, rid) if sink is None else Log(worker, rid, sink)
    started = clock()
    try:
        response = await handler(request, log)
    except Exception as exc:  # the edge: anything unexpected is logged and answered as JSON
        log.error("request.crashed", path=request.path, error=type(exc).__name__, detail=str(exc))
        response = error_response(
            500, "internal_error", f"unexpected error; quote request id {rid} when reporting it"
        )
    elapsed_ms = (clock() - started) * 1000.0
    metrics.incr(f"http.{response.status // 100}xx")
    metrics.observe("http.request", elapsed_ms, ok=response.status < 500)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers[REQUEST_ID_HEADER] = rid
    response.headers[RESPONSE_TIME_HEADER] = f"{elapsed_ms:.1f}ms"
    quiet = (
        routine is not None
        and response.status < 400
        and elapsed_ms < ROUTINE_MAX_MS
        and routine(request, response)
    )
    if not quiet:
        log.event(
            "request",
            method=request.method,
            path=request.path,
            status=response.status,
            ms=round(elapsed_ms, 1),
        )
    return response
