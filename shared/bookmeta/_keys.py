"""Cache keys shared by the proxy and the warmer.

Both build keys here, never by hand, so a warmed entry is the one the proxy reads. A key is
``"{KEY_VERSION}:{kind}:{params}"``; bump :data:`KEY_VERSION` to orphan every old entry when the
format or a normalization changes. Keys are capped at 512 UTF-8 bytes (the KV limit).
"""

from __future__ import annotations

import functools
import hashlib
import re
from urllib.parse import quote

from bookmeta._isbn import canonical
from bookmeta._query import classify, normalize_key

__all__ = [
    "AUTHOR_PAGE_SIZE",
    "AUTHOR_WARM_MAX_RESULTS",
    "DEFAULT_LANG",
    "KEY_VERSION",
    "MAX_KEY_BYTES",
    "WARM_ISBNS_MAX",
    "author_warm_key",
    "cache_key",
    "isbn_key",
    "search_key",
]

# v2: normalize_key keeps + # and word-leading . - (C++ and C# were one key in v1).
# Not bumped when word-internal apostrophes started to be kept: only keys with one change
# (o'brien), and an old entry still reachable ("obrien") came from that same upstream text.
KEY_VERSION = "v2"
MAX_KEY_BYTES = 512
# The warmer <-> proxy contract (ARCHITECTURE.md): the proxy's default langRestrict, the
# author search the warmer sends (maxResults, no translations), and the ISBNdb author page
# both ask the isbndb worker for (so its LRU or shared KV answers the second ask).
DEFAULT_LANG = "en"
AUTHOR_WARM_MAX_RESULTS = 40
AUTHOR_PAGE_SIZE = 50
# At most this many ISBNs per warm_isbns call: each costs ~4 KV/R2 operations in the proxy,
# which has 1,000 per invocation.
WARM_ISBNS_MAX = 200
_KIND_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def _encode(value: str | int | bool) -> str:
    # bool before int: True is an int too.
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(value)
    else:
        text = normalize_key(value)
    return quote(text, safe="")


def cache_key(kind: str, /, **params: str | int | bool | None) -> str:
    """Return the cache key for a ``kind`` of lookup with ``params``.

    Params are sorted by name, None values dropped, bools written ``true``/``false``, strings
    passed through :func:`~bookmeta._query.normalize_key`; names and values are percent-encoded
    so ``&`` and ``=`` inside a value cannot collide with the separators. When the key would
    exceed 512 UTF-8 bytes, the param part is replaced by ``h:`` + its SHA-256 hex digest.

    Raises:
        ValueError: ``kind`` is not 1-64 characters of ``[a-z0-9_.-]`` (a programming error).
    """
    if _KIND_RE.fullmatch(kind) is None:
        raise ValueError(f"cache key kind must match {_KIND_RE.pattern}, got {kind!r}")
    head = f"{KEY_VERSION}:{kind}:"
    body = "&".join(
        f"{quote(name, safe='')}={_encode(value)}"
        for name, value in sorted(params.items())
        if value is not None
    )
    key = head + body
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        key = head + "h:" + hashlib.sha256(body.encode("utf-8")).hexdigest()
    return key


@functools.lru_cache(maxsize=4096, typed=True)  # pure; every hit computes its key
def search_key(
    kind: str,
    q: str,
    *,
    max_results: int,
    lang: str | None = None,
    translations: bool = True,
    start: int = 0,
) -> str:
    """Return the cache key of a search, the same for the proxy and the warmer.

    ``kind`` is a :class:`~bookmeta._query.QueryKind` value (``"isbn"``, ``"author"``, ...);
    for ``"isbn"`` the query is canonicalized first so every spelling of one ISBN shares a key.
    ``start`` (Google's ``startIndex``) is part of the key from 1 on; the first page's key
    has none, so it is the key the warmer's author search reads (``author_warm_key``).

    Raises:
        InvalidISBN: ``kind`` is ``"isbn"`` and ``q`` is not a valid ISBN.
    """
    if kind == "isbn":
        q = canonical(q)
    return cache_key(
        "search",
        kind=kind,
        q=q,
        max=max_results,
        lang=lang,
        translations=translations,
        start=start or None,
    )


@functools.lru_cache(maxsize=4096)  # pure; every ISBN hit computes it
def isbn_key(isbn: str) -> str:
    """Return the cache key of one book by ISBN, whatever ``maxResults`` a search asked for.

    The proxy's ISBN searches read it and the bulk warmer writes it, so a warmed book is a
    hit for ``/search/auto?q=<isbn>&maxResults=1``.

    Raises:
        InvalidISBN: ``isbn`` is not a valid ISBN-10 or ISBN-13.
    """
    return cache_key("isbn", isbn=canonical(isbn))


def author_warm_key(name: str) -> str:
    """Return the key of the warmer's author search, ``q=inauthor:<name>``, as the proxy keys it.

    ``maxResults`` is :data:`AUTHOR_WARM_MAX_RESULTS`, translations excluded, language
    :data:`DEFAULT_LANG`; the same key ``q=<name>`` with those parameters reads when the name
    classifies as one (a search with other parameters has its own key).
    """
    query = classify(f"inauthor:{name}")
    return search_key(
        query.kind.value,
        query.text,
        max_results=AUTHOR_WARM_MAX_RESULTS,
        lang=DEFAULT_LANG,
        translations=False,
    )
