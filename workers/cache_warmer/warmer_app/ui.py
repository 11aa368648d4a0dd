"""What the warmer's HTML pages share (pure): colours, style sheet, CSP, headers, layout pieces.

No external asset: the style sheet is inline, allowed by its hash in the CSP (``style-src``
admits nothing else, not even ``style=`` attributes), and the one script is served from the
same origin (``script.py`` at ``/dashboard.js``). Bars are ``<progress>`` elements, each with a
visible ``<label>`` and its numbers in text beside it, so they read without the script.
Every string from outside goes through ``e`` (``html.escape``, quotes included).

Colours (WCAG 2.2): text at least 4.5:1 on the background; a bar's fill at least 3:1 against
its track and against the page (non-text contrast, 1.4.11); tests compute the ratios from
``PALETTE`` and from the pixels Chromium draws.
"""

from __future__ import annotations

import base64
import hashlib
import html
from typing import Any

from .views import Bar

SCRIPT_PATH = "/dashboard.js"

PALETTE = {
    "background": "#ffffff",
    "text": "#1f2328",
    "muted": "#57606a",
    "link": "#0550ae",
    "rule": "#d0d7de",
    "track": "#eaeef2",
    "track_edge": "#6e7781",
    "fill": "#1a7f37",
    "budget_fill": "#0550ae",
}

STYLE = (
    "body{{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:62rem;padding:0 1rem;"
    "color:{text};background:{background}}}a{{color:{link}}}"
    "table{{border-collapse:collapse;width:100%}}td,th{{padding:.4rem;text-align:left;"
    "vertical-align:top;border-bottom:1px solid {rule}}}"
    ".muted{{color:{muted};font-size:.9em}}.state{{font-weight:600}}"
    "form{{margin:1rem 0;padding:1rem;border:1px solid {rule}}}"
    "dl{{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}}dd{{margin:0}}"
    ".bar{{display:grid;grid-template-columns:9rem 12rem;gap:.1rem .6rem;align-items:center;"
    "margin:.4rem 0}}.bar>span{{grid-column:1/-1}}"
    "progress{{appearance:none;-webkit-appearance:none;width:12rem;height:.9rem;"
    "border:1px solid {track_edge};border-radius:.2rem;background:{track};color:{fill}}}"
    "progress::-webkit-progress-bar{{background:{track}}}"
    "progress::-webkit-progress-value{{background:{fill}}}"
    "progress::-moz-progress-bar{{background:{fill}}}"
    "progress.budget{{color:{budget_fill}}}"
    "progress.budget::-webkit-progress-value{{background:{budget_fill}}}"
    "progress.budget::-moz-progress-bar{{background:{budget_fill}}}"
    ".vh{{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);"
    "white-space:nowrap}}"
).format(**PALETTE)

_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode("utf-8")).digest()).decode("ascii")

CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

HTML_HEADERS = {
    "content-type": "text/html; charset=utf-8",
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def e(value: Any) -> str:
    """``value`` as HTML text or attribute value."""
    return html.escape(str(value), quote=True)


def page(title: str, body: str, *, full: bool) -> str:
    """A whole document; ``data-access`` tells the script whether the server showed the full
    view (the token was accepted) or the aggregate one."""
    access = "full" if full else "public"
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{STYLE}</style>"
        f'<script src="{SCRIPT_PATH}" defer></script></head>'
        f'<body data-access="{access}">{body}</body></html>\n'
    )


def bar(item: Bar, *, dom_id: str, context: str = "", budget: bool = False) -> str:
    """A labelled ``<progress>`` with its numbers in text (text only when there is no max).

    ``context`` is read by screen readers after the label (``Books (ISBNs) in my.csv``), so
    bars of several libraries on one page have distinct names.
    """
    hidden = f'<span class="vh"> {e(context)}</span>' if context else ""
    text_id = f"{dom_id}-text"
    if item.max <= 0:
        return (
            f'<div class="bar" id="{e(dom_id)}"><span>{e(item.label)}{hidden}: '
            f'<span id="{e(text_id)}">{e(item.text)}</span></span></div>'
        )
    css = ' class="budget"' if budget else ""
    return (
        f'<div class="bar"><label for="{e(dom_id)}">{e(item.label)}{hidden}</label>'
        f'<progress id="{e(dom_id)}"{css} max="{item.max}" value="{item.value}" '
        f'aria-describedby="{e(text_id)}">{e(item.text)}</progress>'
        f'<span id="{e(text_id)}" class="muted">{e(item.text)}</span></div>'
    )


def token_form(hint: str) -> str:
    """The admin-token field the script uses for the full view and for every action.

    Without the script the form posts to the page itself (405, the token in a body nobody
    reads), never a GET that would put the token in a URL.
    """
    return (
        '<section aria-labelledby="access-h"><h2 id="access-h">Admin access</h2>'
        '<form id="token-form" method="post">'
        '<label for="token">Admin token</label> '
        '<input id="token" name="token" type="password" autocomplete="off" spellcheck="false"> '
        '<button type="submit">Show details</button> '
        '<button type="button" id="forget-token">Forget token</button>'
        f'<p id="token-status" role="status" class="muted">{e(hint)}</p></form>'
        "<noscript><p>The details and the actions need this page's script (JavaScript).</p>"
        "</noscript></section>"
    )
