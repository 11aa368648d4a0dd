"""Works one unit: the calls that warm its items, and what they settled (attempts.py).

An ISBN chunk is one ``warm_isbns`` RPC to the proxy; an author is ISBNdb's bibliography
(the isbndb worker) then the proxy's ``inauthor:`` search. What an attempt settles follows
attempts.py: a deferral (the proxy's per-call Google cap) is progress; an item a provider
failed on is asked again later; a spent daily quota (the isbndb worker's key guard answers 429
``quota_exhausted``, or ``warm_isbns`` names the provider in ``quotaExhausted``) defers with
no try counted. The queue consumer (consumer.py) drives the attempts of one unit at a time.

The warmer's calls to the isbndb worker say ``x-isbndb-purpose: warm`` (and the proxy's
``warm_isbns`` does the same), so they spend the key's warming reserve, not public traffic's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

from bookmeta import (
    AUTHOR_PAGE_SIZE,
    AUTHOR_WARM_MAX_RESULTS,
    DEFAULT_LANG,
    PURPOSE_HEADER,
    REQUEST_ID_HEADER,
    Log,
    Metrics,
    Purpose,
    Request,
    Response,
    Service,
)

from .attempts import Attempt
from .budget import BudgetExhausted
from .config import Settings
from .planner import KV_WRITES_PER_ITEM, Unit, UnitKind

PROXY_URL = "https://books-api-proxy.internal"
ISBNDB_URL = "https://isbndb-worker.internal"
NO_RESULTS = "no results from any provider"
# warm_isbns gets this share of the warmer's wait (WARM_CALL_TIMEOUT_MS) as its deadline; the
# rest is for the proxy to store what it found and answer before the warmer gives up.
WARM_BUDGET_SHARE = 0.8


def warm_budget_ms(call_timeout_ms: int) -> int:
    """The ``budget_ms`` passed to ``warm_isbns`` for a call the warmer waits on this long."""
    return max(1, int(call_timeout_ms * WARM_BUDGET_SHARE))


def author_search_url(name: str) -> str:
    """The proxy search that warms an author (the original system's call, made explicit).

    ``inauthor:`` says what the warmer knows, that the text is an author, so the proxy never
    retries it as a title search (which costs every provider a second call for authors nobody
    lists). The cache key is ``bookmeta.author_warm_key(name)``.
    """
    query = urlencode(
        {
            "q": f"inauthor:{name}",
            "maxResults": AUTHOR_WARM_MAX_RESULTS,
            "includeTranslations": "false",
        }
    )
    return f"{PROXY_URL}/search/auto?{query}"


def author_bibliography_url(name: str) -> str:
    """ISBNdb worker's author bibliography, name percent-encoded as one path segment."""
    query = urlencode({"page": 1, "pageSize": AUTHOR_PAGE_SIZE, "language": DEFAULT_LANG})
    return f"{ISBNDB_URL}/author/{quote(name, safe='')}?{query}"


def _is_transient(status: int) -> bool:
    return status == 429 or status >= 500


def _no_results(search: Response) -> bool:
    """True for a search answer that lists no book (``totalItems`` 0 and no ``items``)."""
    try:
        body = search.json()
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    return not body.get("items") and body.get("totalItems") == 0


def _failed_providers(search: Response) -> list[str]:
    """The providers a partial search answer names as failed (none for a full answer)."""
    try:
        body = search.json()
    except ValueError:
        return []
    failed = body.get("failedProviders") if isinstance(body, dict) else None
    return [str(p) for p in failed] if isinstance(failed, list) else []


def _quota_note(provider: str, retry_after: Any) -> str:
    """A progress detail naming the spent quota and when it resets."""
    when = ""
    if isinstance(retry_after, int | float) and not isinstance(retry_after, bool):
        when = f"; resets in {round(retry_after / 60)} min"
    return f"{provider}: daily quota of the key spent (key guard){when}"


def _quota_exhausted(response: Response) -> str | None:
    """The defer note when the isbndb worker answered 429 ``quota_exhausted``, else None."""
    if response.status != 429:
        return None
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        return None
    if not isinstance(error, dict) or error.get("code") != "quota_exhausted":
        return None
    retry = response.headers.get("retry-after", "")
    return _quota_note("isbndb", float(retry) if retry.isascii() and retry.isdigit() else None)


def warm_attempt(sent: Sequence[str], result: Any) -> Attempt:
    """Map a ``warm_isbns`` RPC result (or its error shape) for the ISBNs ``sent``.

    ``deferred`` ISBNs were not asked (the proxy's per-call cap): not failed, though the
    proxy also lists them in ``failed`` for older callers. Other ``failed`` ISBNs were asked
    and a provider failed: ask again. ``notFound`` and ``invalid`` are settled.
    """
    if not isinstance(result, dict):
        return Attempt.failed_call(sent, f"warm_isbns returned {type(result).__name__}")
    error = result.get("error")
    if isinstance(error, dict):
        reason = f"{error.get('code', 'error')}: {error.get('message', '')}".strip()
        if _is_transient(int(error.get("status") or 500)):
            return Attempt.failed_call(sent, reason)
        return Attempt.refused(sent, reason)
    calls = result.get("upstreamCalls", {})
    attempt = Attempt(upstream={str(k): int(v) for k, v in calls.items()})
    stored = len(result.get("warmed", [])) + len(result.get("notFound", []))
    attempt.upstream["kv_writes"] = KV_WRITES_PER_ITEM * stored
    for isbn in [*result.get("warmed", []), *result.get("alreadyCached", [])]:
        if str(isbn) not in attempt.done:
            attempt.done.append(str(isbn))
    attempt.deferred = [str(i) for i in result.get("deferred", [])]
    for isbn in result.get("notFound", []):
        attempt.failed.setdefault(str(isbn), "not found by any provider")
    for isbn in result.get("invalid", []):
        attempt.failed.setdefault(str(isbn), "invalid ISBN")
    for entry in result.get("failed", []):
        if isinstance(entry, dict) and str(entry.get("isbn")) not in attempt.deferred:
            attempt.retry.setdefault(str(entry.get("isbn")), str(entry.get("reason", "failed")))
    spent = result.get("quotaExhausted")
    if attempt.retry and isinstance(spent, dict) and spent:
        # A provider's daily quota is spent: what it could not answer waits for the reset
        # (deferred: no try counted); the ISBNs warmed now come back as alreadyCached.
        provider, retry_after = sorted(spent.items())[0]
        attempt.quota = _quota_note(str(provider), retry_after)
        attempt.deferred.extend(attempt.retry)
        attempt.retry = {}
    return attempt


class UnitWorker:
    """Makes one attempt at a unit's items over the (metered) bindings."""

    def __init__(
        self,
        *,
        proxy: Service,
        isbndb: Service,
        settings: Settings,
        metrics: Metrics,
        log: Log,
    ) -> None:
        self._proxy = proxy
        self._isbndb = isbndb
        self._settings = settings
        self._metrics = metrics
        self._log = log

    async def attempt(self, todo: Unit) -> Attempt:
        """Send ``todo``'s items once; a binding that throws is a retry of every item."""
        return await self._attempt(todo)

    async def _attempt(self, todo: Unit) -> Attempt:
        try:
            if todo.kind is UnitKind.ISBNS:
                budget_ms = warm_budget_ms(self._settings.call_timeout_ms)
                result = await self._proxy.call("warm_isbns", list(todo.items), budget_ms)
                return warm_attempt(todo.items, result)
            return await self._warm_author(todo.items[0])
        except BudgetExhausted:
            raise
        except Exception as exc:  # a binding that throws: ask again on a later run
            self._metrics.incr("warm.binding_errors")
            return Attempt.failed_call(todo.items, f"{type(exc).__name__}: {exc}"[:300])

    async def _warm_author(self, name: str) -> Attempt:
        headers = {REQUEST_ID_HEADER: self._log.request_id, "accept": "application/json"}
        bibliography = await self._isbndb.fetch(
            Request(
                "GET",
                author_bibliography_url(name),
                {**headers, PURPOSE_HEADER: Purpose.WARM.value},
            )
        )
        if (deferred := _quota_exhausted(bibliography)) is not None:
            # The proxy's search would ask for the same page as public traffic: wait instead.
            return Attempt(deferred=[name], upstream={"isbndb": 0}, quota=deferred)
        if bibliography.status >= 400:
            self._log.warning("warm.author_isbndb", author=name, status=bibliography.status)
        search = await self._proxy.fetch(Request("GET", author_search_url(name), headers))
        if search.status < 400:
            if (failed := _failed_providers(search)) and _no_results(search):
                # Nothing found while a provider was down: no evidence either way; retry later.
                reason = f"proxy search partial ({', '.join(failed)} failed)"
                return Attempt(retry={name: reason})
            if _no_results(search):
                # The proxy keeps an empty answer only briefly (a KV-only negative entry that
                # cache_status reports as absent): recorded as failed, so verification does not
                # re-warm an author nobody lists every night.
                return Attempt(failed={name: NO_RESULTS})
            return Attempt(done=[name])
        reason = f"proxy search answered {search.status}"
        with contextlib.suppress(ValueError, KeyError, TypeError):
            reason = f"{reason}: {search.json()['error']['message']}"
        if _is_transient(search.status):
            return Attempt(retry={name: reason})
        return Attempt(failed={name: reason})
