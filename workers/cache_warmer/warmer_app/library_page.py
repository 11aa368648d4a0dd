"""A library's page, ``GET /libraries/{id}`` for browsers (pure HTML from a ``LibraryView``).

Sections, in order: status (state in words, expected time, last run), progress (labelled
bars), actions ("Warm now", "Retry failed items": forms the script sends with the token),
failed items with their reasons, what the file contained with the rows skipped (line and
reason), and today's provider budgets. Without the token the failed items, the file's contents
and the file name are left out (the aggregate view); the actions are shown, and need the token.
"""

from __future__ import annotations

from collections.abc import Sequence

from .ui import bar, e, page, token_form
from .views import LibraryView


def _section(key: str, title: str, inner: str) -> str:
    return f'<section aria-labelledby="{key}-h"><h2 id="{key}-h">{e(title)}</h2>{inner}</section>'


def _table(
    caption: str, headers: tuple[str, ...], rows: Sequence[tuple[str, ...]], kind: str
) -> str:
    head = "".join(f'<th scope="col">{e(h)}</th>' for h in headers)
    body = "".join(
        f'<tr class="{kind}">' + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return (
        f'<table><caption class="vh">{e(caption)}</caption><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def _status(view: LibraryView) -> str:
    lines = [
        ("Expected", view.status.eta, "eta"),
        ("Last run", view.last_run, "last-run"),
    ]
    if view.full:
        lines.append(("Nightly check", view.verification, "verification"))
    items = "".join(f'<dt>{e(k)}</dt><dd id="{i}">{e(v)}</dd>' for k, v, i in lines)
    return f'<p><span class="state" id="state">{e(view.status.words)}</span></p><dl>{items}</dl>'


def _actions(view: LibraryView) -> str:
    lid = e(view.id)
    done = view.pending == 0
    retry_label = (
        f"Retry {view.failed:,} failed item{'' if view.failed == 1 else 's'}"
        if view.failed
        else "Retry failed items"
    )
    warm_note = (
        "Nothing is pending."
        if done
        else "Runs one batch now, within the same budgets as the queue's batches."
    )
    retry_note = (
        "Queues the failed items again; they count as pending until a run warms them."
        if view.failed
        else "No item has failed."
    )
    disabled_warm = " disabled" if done else ""
    disabled_retry = "" if view.failed else " disabled"
    return (
        '<p class="muted">Both need the admin token (above).</p>'
        f'<form class="action" method="post" action="/libraries/{lid}/warm" data-action="warm">'
        f'<button type="submit" id="warm-now"{disabled_warm}>Warm now</button> '
        f'<span class="muted">{e(warm_note)}</span></form>'
        f'<form class="action" method="post" action="/libraries/{lid}/retry" data-action="retry">'
        f'<button type="submit" id="retry-failed"{disabled_retry}>{e(retry_label)}</button> '
        f'<span class="muted">{e(retry_note)}</span></form>'
        '<p id="action-status" role="status"></p>'
    )


def _failures(view: LibraryView) -> str:
    table = ""
    if view.failures:
        rows = [(item, reason) for item, reason in view.failures]
        table = _table("Failed items", ("Item", "Reason"), rows, "failure")
    note = f'<p class="muted">{e(view.failures_note)}</p>' if view.failures_note else ""
    return table + note


def _contents(view: LibraryView) -> str:
    facts = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in view.contents)
    skipped = ""
    if view.skipped:
        rows = [(str(line), reason) for line, reason in view.skipped]
        skipped = _table("Rows skipped", ("Line", "Reason"), rows, "skipped")
    elif not view.skipped_note:
        skipped = '<p class="muted">Every row had a usable ISBN.</p>'
    note = f'<p class="muted">{e(view.skipped_note)}</p>' if view.skipped_note else ""
    return (
        f"<dl>{facts}</dl><h3>Rows skipped</h3>"
        '<p class="muted">Rows whose book is not warmed (the header is line 1), '
        f"and why.</p>{skipped}{note}"
    )


def _budgets(view: LibraryView) -> str:
    bars = "".join(
        bar(
            b,
            dom_id=f"budget-{b.key}",
            context="writes today" if b.key == "kv_writes" else "calls today",
            budget=True,
        )
        for b in view.budgets
    )
    return f'<p class="muted">{e(view.budget_note)} Day: {e(view.budget_day)}.</p>{bars}'


def render_library(view: LibraryView) -> str:
    """The whole page."""
    subtitle = view.source + (f" · imported {view.imported}" if view.imported else "")
    hint = (
        "Full view: file name, failed items and skipped rows are shown."
        if view.full
        else "Without the token this page shows progress only: no file name, books or authors."
    )
    bars = "".join(bar(b, dom_id=f"bar-{b.key}") for b in view.bars)
    sections = [
        _section("status", "Status", _status(view)),
        _section("progress", "Progress", bars),
        _section("actions", "Actions", _actions(view)),
        _section("failures", "Failed items", _failures(view)),
    ]
    if view.full:
        sections.append(_section("contents", "What the file contained", _contents(view)))
    sections.append(_section("budgets", "Today's provider budgets", _budgets(view)))
    body = (
        '<p><a href="/">All libraries</a></p>'
        f'<header id="head" data-view><h1>{e(view.title)}</h1>'
        f'<p class="muted">{e(subtitle)} · id {e(view.id)}</p></header>'
        + token_form(hint)
        + f'<main id="view" data-view data-state="{e(view.status.state.value)}">'
        + "".join(sections)
        + "</main>"
    )
    return page(f"{view.title}: {view.status.words}", body, full=view.full)
