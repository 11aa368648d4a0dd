"""Authenticated pass-through to the warmer's bindings, for operators and the e2e tests.

In a multi-worker ``wrangler dev`` session only the first worker gets a URL; these routes
let a caller reach the proxy and the isbndb worker *through the warmer's own bindings*::

    GET  /debug/proxy/<path>?<query>        -> GET  https://books-api-proxy.internal/<path>
    GET  /debug/isbndb/<path>?<query>       -> GET  https://isbndb-worker.internal/<path>
    POST /debug/rpc/{proxy|isbndb}/<method>    body: JSON array of positional arguments

Only GET is forwarded (nothing else is read), and only the RPC methods listed here can be
called: not the proxy's ``warm_isbns``, which spends upstream quota outside the warmer's daily
budgets. An RPC body is read only after those checks, up to ``MAX_RPC_BODY_BYTES``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from bookmeta import Request, Response, Service, error_response, json_response, parse_json

from .runner import ISBNDB_URL, PROXY_URL

TARGETS = {"proxy": ("BOOKS_API_PROXY", PROXY_URL), "isbndb": ("ISBNDB_WORKER", ISBNDB_URL)}
RPC_METHODS = {
    "proxy": frozenset(
        {"search_auto", "search_isbn", "search_author", "search_title"}
        | {"cache_status", "sweep_cache", "health", "metrics"}
    ),
    "isbndb": frozenset({"author", "book", "books", "health", "metrics"}),
}
MAX_RPC_BODY_BYTES = 256 * 1024  # the arguments: a few thousand ISBNs at most
_PASSED_HEADERS = ("content-type", "x-cache", "retry-after", "x-response-time", "allow")


def parse_target(path: str) -> tuple[str, str, str] | None:
    """``("forward"|"rpc", target, rest)`` for a ``/debug/...`` path, else None."""
    parts = path.split("/", 4)  # ['', 'debug', kind-or-target, ...]
    if len(parts) < 3 or parts[1] != "debug":
        return None
    if parts[2] == "rpc" and len(parts) == 5 and parts[3] in TARGETS:
        return "rpc", parts[3], parts[4]
    if parts[2] in TARGETS:
        return "forward", parts[2], "/".join(parts[3:])
    return None


async def forward(request: Request, service: Service, target: str, rest: str) -> Response:
    """GET ``rest`` (still percent-encoded) with the query on the target worker."""
    if request.method != "GET":
        return error_response(405, "method_not_allowed", "only GET is forwarded")
    query = urlsplit(request.url).query
    url = f"{TARGETS[target][1]}/{rest}" + (f"?{query}" if query else "")
    rid = request.header("x-request-id")
    upstream = await service.fetch(Request("GET", url, {"x-request-id": rid} if rid else {}))
    headers = {k: v for k, v in upstream.headers.items() if k in _PASSED_HEADERS}
    return Response(upstream.status, upstream.body, headers)


async def call(request: Request, service: Service, target: str, method: str) -> Response:
    """Call an allowed RPC ``method`` with the JSON array body as positional arguments."""
    if request.method != "POST":
        return error_response(405, "method_not_allowed", "RPC calls are POST")
    if method not in RPC_METHODS[target]:
        return error_response(404, "not_found", f"{target} has no callable method {method!r}")
    body = await request.read_body(MAX_RPC_BODY_BYTES)
    args = parse_json(body) if body.strip() else []
    if not isinstance(args, list):
        return error_response(400, "invalid_input", "body must be a JSON array of arguments")
    return json_response({"result": await service.call(method, *args)})
