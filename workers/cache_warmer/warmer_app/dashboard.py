"""The progress dashboard (pure HTML, no external assets).

Progress is a ``<progress>`` element plus a CSS-width bar and the percentage in text, so it reads
without JavaScript. The upload form posts multipart/form-data; a small same-origin script adds
the ``Authorization: Bearer`` header (HTML forms cannot), served at ``/dashboard.js`` so the CSP
can forbid inline script. Every user-provided string goes through ``html.escape``. Without the
admin token the rows come from the aggregate view (no filename: the id names the library).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

SCRIPT = """\
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("upload");
  const out = document.getElementById("upload-result");
  if (!form || !out) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const token = String(data.get("token") || "");
    data.delete("token");
    out.textContent = "Uploading\\u2026";
    try {
      const resp = await fetch(form.action, {
        method: "POST", body: data, headers: {"Authorization": "Bearer " + token},
      });
      const body = await resp.json();
      out.textContent = resp.ok
        ? "Imported " + body.format + ": " + body.validIsbns + " ISBNs, " + body.authors +
          " authors. Reload to follow progress."
        : "Rejected (" + resp.status + "): " + body.error.message;
    } catch (err) {
      out.textContent = "Upload failed: " + err;
    }
  });
});
"""

_STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{padding:.4rem;border-bottom:1px solid #ddd;
text-align:left;vertical-align:top}progress{width:12rem}
.bar{background:#eee;height:.6rem;width:12rem;border-radius:.3rem;overflow:hidden}
.bar>span{display:block;height:100%;background:#2a7}
.muted{color:#666;font-size:.9em}form{margin:1rem 0;padding:1rem;border:1px solid #ddd}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _when(epoch_s: Any) -> str:
    if not isinstance(epoch_s, int | float):
        return "never"
    return datetime.fromtimestamp(float(epoch_s), tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _eta(progress: Mapping[str, Any]) -> str:
    eta = progress.get("eta")
    if progress.get("status") == "done":
        return "complete"
    if not isinstance(eta, Mapping):
        return "unknown"
    return f"about {float(eta['seconds']) / 3600.0:.1f} h (by {_when(eta['at'])})"


def _last_run(progress: Mapping[str, Any]) -> str:
    last = progress.get("lastRun")
    if not isinstance(last, Mapping):
        return "never"
    if "at" in last:
        return _when(last["at"])
    return f"stopped by {last.get('stoppedBy', '?')}"  # the view without the token has no time


def _row(progress: Mapping[str, Any]) -> str:
    percent = max(0.0, min(100.0, float(progress.get("percent", 0.0))))
    pid = _e(progress["id"])
    label = f"{percent:.1f}%"
    return (
        f'<tr id="lib-{pid}" data-percent="{percent:.1f}">'
        f'<td><a href="/libraries/{pid}">{_e(progress.get("filename") or progress["id"])}</a>'
        f'<div class="muted">{_e(progress.get("format", ""))} · {pid}</div></td>'
        f'<td><progress max="100" value="{percent:.1f}" aria-label="{pid} progress">{label}'
        f'</progress><div class="bar"><span style="width:{percent:.1f}%"></span></div>'
        f'<span class="percent">{label}</span></td>'
        f"<td>{_e(progress.get('done', 0))} done, {_e(progress.get('failed', 0))} failed, "
        f"{_e(progress.get('remaining', 0))} left of {_e(progress.get('total', 0))}</td>"
        f"<td>{_e(_last_run(progress))}"
        f'<div class="muted">ETA {_e(_eta(progress))}</div></td></tr>'
    )


def render_dashboard(libraries: Sequence[Mapping[str, Any]], *, max_upload_bytes: int) -> str:
    """The dashboard page: upload form, then one progress row per library (newest first)."""
    rows = "".join(_row(p) for p in libraries) or (
        '<tr><td colspan="4" class="muted">No libraries yet: upload an export above.</td></tr>'
    )
    limit_mib = max_upload_bytes / (1024 * 1024)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Library cache warmer</title><style>{_STYLE}</style>"
        '<script src="/dashboard.js" defer></script></head><body>'
        "<h1>Library cache warmer</h1>"
        '<form id="upload" method="post" action="/libraries" enctype="multipart/form-data">'
        "<p>Upload a Goodreads, StoryGraph, LibraryThing (TSV) or Calibre export, or a CSV "
        f"with isbn/title/author columns (at most {_e(f'{limit_mib:g}')} MiB).</p>"
        '<label>File <input type="file" name="file" accept=".csv,.tsv,.txt" required></label> '
        '<label>Admin token <input type="password" name="token" autocomplete="off"></label> '
        '<button type="submit">Import</button><p id="upload-result" role="status"></p></form>'
        "<h2>Libraries</h2><table><thead><tr><th>Library</th><th>Progress</th><th>Items</th>"
        f"<th>Last run</th></tr></thead><tbody>{rows}</tbody></table></body></html>\n"
    )
