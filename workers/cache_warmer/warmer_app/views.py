"""What the library owner reads (pure): the progress view turned into words, bars and rows.

The HTML pages (``library_page.py``, ``dashboard.py``) only lay these out. Inputs are the
``progress`` view of ``jobs.py`` (the full one, or ``public_progress`` of it without the admin
token), plus what only the full view may show (per-kind counts, the import report) and what is
not library data (today's provider usage and budgets). Nothing here escapes HTML: every string is
plain text, escaped where it is written into a page.

States, derived from ``status`` and the last run's ``stoppedBy``:

=======================  =============================================================
queued                   imported, no batch warmed yet
warming                  runs are working it (stopped by the run's subrequest or time
                         budget, or items were queued again by a retry or the nightly check)
waiting_for_budget       the last run stopped on a provider's daily budget
paused_after_error       the last run stopped on a provider or binding error; retried
done                     every item looked up, none failed
done_with_failures       every item looked up, some failed (listed with their reasons)
=======================  =============================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from .budget import PROVIDERS
from .verify import utc_day

PROVIDER_NAMES = {
    "isbndb": "ISBNdb",
    "google": "Google Books",
    "openlibrary": "Open Library",
    "kv_writes": "KV",
}
FORMAT_NAMES = {
    "goodreads": "Goodreads",
    "storygraph": "StoryGraph",
    "librarything": "LibraryThing",
    "calibre": "Calibre",
    "generic": "CSV",
}
KIND_LABELS = (("isbns", "Books (ISBNs)"), ("author", "Authors"))
ALL_ITEMS_LABEL = "Books and authors"
# Warming is queue-driven: batches run as the queue delivers them, and the */15 cron only
# re-sends what got stuck, so the owner is told about the queue, not the cron cadence.
QUEUE_WORDS = (
    "the queue delivers batches within seconds; a check every 15 minutes re-sends any stuck"
)
NO_ISBN_REASON = "no ISBN (its author is still warmed)"


class State(StrEnum):
    """A library's state, as the pages name it (see the module docstring)."""

    QUEUED = "queued"
    WARMING = "warming"
    WAITING_FOR_BUDGET = "waiting_for_budget"
    PAUSED_AFTER_ERROR = "paused_after_error"
    DONE = "done"
    DONE_WITH_FAILURES = "done_with_failures"


@dataclass(frozen=True, slots=True)
class Status:
    """The state in words and when the owner can expect it to be done (or to continue)."""

    state: State
    words: str
    eta: str


@dataclass(frozen=True, slots=True)
class Bar:
    """One labelled bar: ``value`` of ``max`` (``max`` 0: nothing to measure, text only)."""

    key: str
    label: str
    value: int
    max: int
    text: str


@dataclass(frozen=True, slots=True)
class LibraryRow:
    """A library in the dashboard's list."""

    id: str
    title: str
    source: str
    status: Status
    bars: tuple[Bar, ...]


@dataclass(frozen=True, slots=True)
class LibraryView:
    """Everything the library's page shows; the ``full`` parts are empty without the token."""

    id: str
    full: bool
    title: str
    source: str
    imported: str
    status: Status
    last_run: str
    bars: tuple[Bar, ...]
    failed: int
    pending: int
    budget_day: str
    budgets: tuple[Bar, ...]
    budget_note: str
    contents: tuple[tuple[str, str], ...] = ()
    skipped: tuple[tuple[int, str], ...] = ()
    skipped_note: str = ""
    failures: tuple[tuple[str, str], ...] = ()
    failures_note: str = ""
    verification: str = ""


# -- words -----------------------------------------------------------------------------------


def plural(n: int, noun: str) -> str:
    """``1 item``, ``2 items``, with thousands separators."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def utc_time(epoch_s: float, *, now: float) -> str:
    """``14:05 UTC`` today, ``00:30 UTC tomorrow``, else ``2026-01-03 14:05 UTC``."""
    when = datetime.fromtimestamp(epoch_s, tz=UTC)
    days = (when.date() - datetime.fromtimestamp(now, tz=UTC).date()).days
    clock = when.strftime("%H:%M UTC")
    if days == 0:
        return clock
    if days == 1:
        return f"{clock} tomorrow"
    return when.strftime("%Y-%m-%d %H:%M UTC")


def utc_stamp(epoch_s: Any) -> str:
    """``2026-01-01 00:15 UTC``, or ``""`` when ``epoch_s`` is not a number."""
    if not isinstance(epoch_s, int | float) or isinstance(epoch_s, bool):
        return ""
    return datetime.fromtimestamp(float(epoch_s), tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def human_duration(seconds: float) -> str:
    """``less than a minute``, ``about 12 minutes``, ``about 3 hours``, ``about 2 days``."""
    if seconds < 60:
        return "less than a minute"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {plural(minutes, 'minute')}"
    hours = round(seconds / 3600)
    if hours < 48:
        return f"about {plural(hours, 'hour')}"
    return f"about {plural(round(seconds / 86400), 'day')}"


def provider_names(detail: Any) -> list[str]:
    """``"google, isbndb"`` (a daily-budget stop's detail) -> ``["Google Books", "ISBNdb"]``."""
    names = [p.strip() for p in str(detail or "").split(",") if p.strip()]
    return [PROVIDER_NAMES.get(n, n) for n in names]


def _budgets(detail: Any) -> str:
    """``"google, isbndb"`` -> ``Google Books and ISBNdb budgets``."""
    names = provider_names(detail) or ["provider"]
    if len(names) == 1:
        return f"{names[0]} budget"
    return f"{', '.join(names[:-1])} and {names[-1]} budgets"


def _stop_words(last: Mapping[str, Any]) -> str:
    stop, detail = last.get("stoppedBy"), str(last.get("detail") or "")
    if stop == "complete":
        return "went through all pending work"
    if stop == "subrequests":
        return "reached its subrequest limit; the next run continues"
    if stop == "time":
        return "used its time budget; the next run continues"
    if stop == "daily_budget":
        return f"reached today's {_budgets(detail)}"
    if stop == "transient_error":
        return f"a call failed ({detail or 'no detail'}); the next run tries again"
    if stop == "busy":
        return "another run was working this library"
    return str(stop or "unknown")


def last_run_words(view: Mapping[str, Any]) -> str:
    """``2026-01-01 00:15 UTC: 22 items in 11 units; reached its subrequest limit; ...``."""
    last = view.get("lastRun")
    if not isinstance(last, Mapping):
        return "none yet"
    stamp = utc_stamp(last.get("at"))
    if not stamp:  # the view without the token: no time, no counts
        return f"stopped: {_stop_words(last)}"
    items, units = int(last.get("items") or 0), int(last.get("units") or 0)
    return f"{stamp}: {plural(items, 'item')} in {plural(units, 'unit')}; {_stop_words(last)}"


# -- state and ETA ---------------------------------------------------------------------------


def _eta_words(view: Mapping[str, Any], *, now: float) -> str:
    # The queue warms continuously, so the rate's estimate is the expected time itself; one
    # already past means the queue is behind its pace (retries, a slow provider).
    eta = view.get("eta")
    if not isinstance(eta, Mapping):
        return f"known once a batch has been warmed ({QUEUE_WORDS})"
    at = float(eta.get("at") or 0.0)
    if at <= now:
        return "any moment now (past the estimate: the queue is still working through it)"
    return f"{human_duration(at - now)} (about {utc_time(at, now=now)})"


def status_of(view: Mapping[str, Any], *, now: float) -> Status:
    """The library's state in words and its ETA in human units, at wall time ``now``."""
    last = view.get("lastRun")
    last = last if isinstance(last, Mapping) else {}
    stop = last.get("stoppedBy")
    failed = int(view.get("failed") or 0)
    if view.get("status") == "done":
        finished = utc_stamp(last.get("at"))
        eta = f"nothing left (finished {finished})" if finished else "nothing left"
        if failed:
            return Status(State.DONE_WITH_FAILURES, f"done, {plural(failed, 'item')} failed", eta)
        return Status(State.DONE, "done", eta)
    if stop == "daily_budget":
        at = last.get("at")
        if isinstance(at, int | float) and utc_day(float(at)) != utc_day(now):
            # The stop was on an earlier UTC day: the budgets have been renewed since.
            return Status(
                State.WARMING,
                "warming: the daily budgets were renewed at 00:00 UTC",
                "soon: the queue re-delivers the batches it held back for the budgets",
            )
        return Status(
            State.WAITING_FOR_BUDGET,
            f"waiting for tomorrow's {_budgets(last.get('detail'))}",
            "tomorrow after 00:00 UTC, when the daily budgets reset",
        )
    if stop == "transient_error":
        return Status(
            State.PAUSED_AFTER_ERROR,
            "paused after an error; the next run tries again",
            _eta_words(view, now=now),
        )
    if view.get("status") == "queued":
        return Status(
            State.QUEUED,
            "queued: no batch has been warmed yet",
            f"starts when the first batch is delivered ({QUEUE_WORDS})",
        )
    return Status(State.WARMING, "warming", _eta_words(view, now=now))


# -- bars ------------------------------------------------------------------------------------


def _bar(key: str, label: str, done: int, failed: int, total: int) -> Bar:
    looked_up = min(done + failed, total)
    if total <= 0:
        return Bar(key, label, 0, 0, "none in this file")
    text = f"{looked_up:,} of {total:,} looked up: {done:,} warmed, {failed:,} failed"
    return Bar(key, label, looked_up, total, text)


def progress_bars(
    view: Mapping[str, Any], kinds: Mapping[str, Mapping[str, int]] | None
) -> tuple[Bar, ...]:
    """One bar per item kind (books, authors) when ``kinds`` is known, else one for all items."""
    if kinds:
        return tuple(
            _bar(key, label, int(c.get("done", 0)), int(c.get("failed", 0)), int(c["total"]))
            for key, label in KIND_LABELS
            if (c := kinds.get(key)) is not None
        )
    done, failed = int(view.get("done") or 0), int(view.get("failed") or 0)
    return (_bar("items", ALL_ITEMS_LABEL, done, failed, int(view.get("total") or 0)),)


def _percent(part: int, whole: int) -> str:
    percent = 100.0 * part / whole
    if part == 0:
        return "0%"
    if percent < 0.1:
        return "under 0.1%"
    return f"{percent:.1f}%" if percent < 10 else f"{percent:.0f}%"


def budget_bars(calls: Mapping[str, int], budgets: Mapping[str, int]) -> tuple[Bar, ...]:
    """Today's upstream calls of warming against each provider's daily budget."""
    bars = []
    for provider in PROVIDERS:
        name = PROVIDER_NAMES[provider]
        used, budget = int(calls.get(provider, 0)), int(budgets.get(provider, 0))
        if budget <= 0:
            bars.append(Bar(provider, name, 0, 0, "no budget: warming does not call it"))
            continue
        unit = "writes" if provider == "kv_writes" else "calls"
        text = f"{used:,} of {budget:,} {unit} used today ({_percent(used, budget)})"
        if used >= budget:
            text += ": spent until 00:00 UTC"
        bars.append(Bar(provider, name, min(used, budget), budget, text))
    return tuple(bars)


# -- the page and the list -------------------------------------------------------------------


def _title(view: Mapping[str, Any]) -> str:
    return str(view.get("filename") or "") or f"Library {view['id']}"


def _source(view: Mapping[str, Any], variant: str | None) -> str:
    fmt = str(view.get("format") or "")
    name = FORMAT_NAMES.get(fmt, fmt or "unknown")
    return f"{name} export ({variant})" if variant else f"{name} export"


def library_row(
    view: Mapping[str, Any], *, now: float, kinds: Mapping[str, Mapping[str, int]] | None = None
) -> LibraryRow:
    """The dashboard's line for one library (``kinds`` only with the token)."""
    return LibraryRow(
        id=str(view["id"]),
        title=_title(view),
        source=_source(view, None),
        status=status_of(view, now=now),
        bars=progress_bars(view, kinds),
    )


def skipped_rows(report: Mapping[str, Any]) -> tuple[tuple[tuple[int, str], ...], str]:
    """(line, reason) of every row the import skipped or read with a problem, and a note on
    rows left out of the report (it keeps 1,000 of each)."""
    reasons: dict[int, list[str]] = {}
    for problem in report.get("problems", []):
        reasons.setdefault(int(problem["line"]), []).append(str(problem["message"]))
    no_isbn = report.get("rowsWithoutIsbn", {})
    for line in no_isbn.get("lines", []):
        reasons.setdefault(int(line), [NO_ISBN_REASON])
    rows = tuple((line, "; ".join(reasons[line])) for line in sorted(reasons))
    unlisted = max(0, int(report.get("problemsTotal", 0)) - len(report.get("problems", [])))
    unlisted += max(0, int(no_isbn.get("count", 0)) - len(no_isbn.get("lines", [])))
    return rows, (f"{plural(unlisted, 'more row')} not listed." if unlisted else "")


def library_view(
    view: Mapping[str, Any],
    *,
    full: bool,
    now: float,
    usage_day: str,
    calls: Mapping[str, int],
    budgets: Mapping[str, int],
    usage_saturated: bool = False,
    kinds: Mapping[str, Mapping[str, int]] | None = None,
    report: Mapping[str, Any] | None = None,
) -> LibraryView:
    """The library's page from its progress view.

    ``full``: ``view`` is the full progress view (the request had the admin token), else it is
    ``public_progress`` of it and ``kinds`` and ``report`` are ignored. ``calls`` and ``budgets``
    are today's upstream usage and the daily budgets (not library data).
    """
    failed = int(view.get("failed") or 0)
    budget_note = (
        "More warming runs were recorded today than can be summed: the budgets count as spent "
        "until 00:00 UTC."
        if usage_saturated
        else "Calls every library's warming spent today (UTC); budgets reset at 00:00 UTC."
    )
    common: dict[str, Any] = {
        "id": str(view["id"]),
        "full": full,
        "title": _title(view),
        "status": status_of(view, now=now),
        "last_run": last_run_words(view),
        "bars": progress_bars(view, kinds if full else None),
        "failed": failed,
        "pending": int(view.get("remaining") or 0),
        "budget_day": usage_day,
        "budgets": budget_bars(calls, budgets),
        "budget_note": budget_note,
    }
    if not full:
        note = (
            f"{plural(failed, 'item')} failed. The admin token shows which, and why."
            if failed
            else "No item has failed."
        )
        return LibraryView(**common, source=_source(view, None), imported="", failures_note=note)
    report = report or {}
    summary = view.get("library") or {}
    contents = (
        ("File name", str(view.get("filename") or "(none given)")),
        ("Rows read", f"{int(summary.get('rows', 0)):,}"),
        ("ISBNs found", f"{int(summary.get('isbns', 0)):,}"),
        ("Authors found", f"{int(summary.get('authors', 0)):,}"),
        ("Rows without a usable ISBN", f"{int(summary.get('rowsWithoutIsbn', 0)):,}"),
    )
    if report:
        skipped, skipped_note = skipped_rows(report)
    else:
        skipped = ()
        skipped_note = "Not recorded: this library was imported before import reports were kept."
    failures = tuple(
        (str(f.get("item", "")), str(f.get("reason", ""))) for f in view.get("failures", [])
    )
    more = int(view.get("failuresTotal") or len(failures)) - len(failures)
    failures_note = f"{plural(more, 'more failed item')} not listed." if more > 0 else ""
    if not failures:
        failures_note = "No item has failed."
    return LibraryView(
        **common,
        source=_source(view, report.get("variant")),
        imported=utc_stamp(view.get("createdAt")),
        contents=contents,
        skipped=skipped,
        skipped_note=skipped_note,
        failures=failures,
        failures_note=failures_note,
        verification=verification_words(view),
    )


def verification_words(view: Mapping[str, Any]) -> str:
    """The nightly check's last result on this library, in a sentence."""
    last = view.get("lastVerify")
    requeued = int(view.get("requeued") or 0)
    again = f" In all, {plural(requeued, 'item')} queued again." if requeued else ""
    if not isinstance(last, Mapping):
        return "Not checked yet (the check runs at 02:00 UTC on libraries that warmed something)."
    stamp = utc_stamp(last.get("at"))
    if "skipped" in last:
        return f"{stamp}: skipped ({last['skipped']}).{again}"
    words = (
        f"{stamp}: {int(last.get('checked', 0)):,} of {int(last.get('of', 0)):,} cached entries "
        f"checked, {int(last.get('missing', 0)):,} missing, {int(last.get('expiring', 0)):,} "
        f"expiring, {int(last.get('requeued', 0)):,} queued again."
    )
    if last.get("error"):
        words += f" The check stopped early: {last['error']}."
    return words + again
