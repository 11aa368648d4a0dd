"""The dashboard at ``/`` (pure HTML): the admin token, the upload form, the list of libraries.

Each library's line links to its page and shows its name (the file name with the token, else
"Library <id>"), its state in words with the expected time, and labelled bars: books and
authors with the token, one bar for all items without it (the aggregate view). The upload form
posts multipart/form-data through the script, which adds the token (see ``script.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from .ui import bar, e, page, token_form
from .views import LibraryRow


def _row(row: LibraryRow) -> str:
    lid = e(row.id)
    bars = "".join(
        bar(b, dom_id=f"bar-{row.id}-{b.key}", context=f"in {row.title}") for b in row.bars
    )
    return (
        f'<tr id="lib-{lid}" data-state="{e(row.status.state.value)}">'
        f'<td><a href="/libraries/{lid}">{e(row.title)}</a>'
        f'<div class="muted">{e(row.source)} · {lid}</div></td>'
        f'<td><span class="state">{e(row.status.words)}</span>'
        f'<div class="muted">Expected: {e(row.status.eta)}</div></td>'
        f"<td>{bars}</td></tr>"
    )


def render_dashboard(
    rows: Sequence[LibraryRow], *, max_upload_bytes: int, full: bool = False
) -> str:
    """The dashboard: token, upload form, then one line per library (newest first)."""
    lines = "".join(_row(r) for r in rows) or (
        '<tr><td colspan="3" class="muted">No libraries yet: import an export above.</td></tr>'
    )
    limit_mib = max_upload_bytes / (1024 * 1024)
    hint = (
        "Full view: file names are shown."
        if full
        else "Without the token the list shows progress only (no file names)."
    )
    body = (
        "<header><h1>Library cache warmer</h1></header>"
        + token_form(hint)
        + '<section aria-labelledby="upload-h"><h2 id="upload-h">Import a library</h2>'
        '<form id="upload" method="post" action="/libraries" enctype="multipart/form-data">'
        "<p>A Goodreads, StoryGraph, LibraryThing (TSV) or Calibre export, or a CSV with "
        f"isbn/title/author columns (at most {e(f'{limit_mib:g}')} MiB). Needs the admin "
        "token.</p>"
        '<label for="file">Export file</label> '
        '<input id="file" type="file" name="file" accept=".csv,.tsv,.txt" required> '
        '<button type="submit">Import</button>'
        '<p id="upload-result" role="status"></p></form></section>'
        '<section id="libraries" data-view aria-labelledby="libraries-h">'
        '<h2 id="libraries-h">Libraries</h2><table><thead><tr><th scope="col">Library</th>'
        '<th scope="col">State</th><th scope="col">Progress</th></tr></thead>'
        f"<tbody>{lines}</tbody></table></section>"
    )
    return page("Library cache warmer", body, full=full)
