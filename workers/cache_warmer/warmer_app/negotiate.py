"""Content negotiation for the read routes: HTML for browsers, JSON for everyone else (pure).

JSON is the default: a request gets HTML only when its ``Accept`` header ranks HTML strictly
above JSON (RFC 9110 section 12.5.1: each type takes the q of the most specific range matching
it). Browsers send ``text/html,...,*/*;q=0.8``, so they get HTML; curl (``*/*``), fetch() without
a header and API clients asking for ``application/json`` get JSON. A malformed range is ignored.
"""

from __future__ import annotations

HTML_TYPES = ("text/html", "application/xhtml+xml")
JSON_TYPE = "application/json"
_MAX_RANGES = 64  # a longer header is someone's fuzzer: the rest is ignored


def _ranges(accept: str) -> list[tuple[str, str, float]]:
    """(type, subtype, q) of each well-formed media range, in header order."""
    out = []
    for part in accept.split(",")[:_MAX_RANGES]:
        media, *params = (p.strip() for p in part.split(";"))
        kind, slash, sub = media.lower().partition("/")
        if not slash or not kind or not sub or (kind == "*" and sub != "*"):
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = -1.0
        if 0.0 <= q <= 1.0:
            out.append((kind, sub, q))
    return out


def quality(accept: str, media_type: str) -> float:
    """The q the ``Accept`` header gives ``media_type`` (0.0 when no range matches it)."""
    kind, _, sub = media_type.partition("/")
    best_specificity, best_q = -1, 0.0
    for r_kind, r_sub, q in _ranges(accept):
        if (r_kind, r_sub) == (kind, sub):
            specificity = 2
        elif r_kind == kind and r_sub == "*":
            specificity = 1
        elif (r_kind, r_sub) == ("*", "*"):
            specificity = 0
        else:
            continue
        if specificity > best_specificity:
            best_specificity, best_q = specificity, q
    return best_q


def prefers_html(accept: str | None) -> bool:
    """True when ``accept`` ranks HTML strictly above JSON; False (JSON) otherwise."""
    if not accept:
        return False
    html = max(quality(accept, t) for t in HTML_TYPES)
    return html > 0.0 and html > quality(accept, JSON_TYPE)
