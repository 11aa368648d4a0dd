"""Language codes: providers mix ISO 639-1 (``en``), 639-2 (``eng``) and locales (``en_US``)."""

from __future__ import annotations

import re

# ISO 639-2 (bibliographic and terminology forms) -> 639-1, for the languages books come in most.
_ISO639_2 = {
    "ara": "ar",
    "chi": "zh",
    "zho": "zh",
    "cze": "cs",
    "ces": "cs",
    "dan": "da",
    "dut": "nl",
    "nld": "nl",
    "eng": "en",
    "fin": "fi",
    "fre": "fr",
    "fra": "fr",
    "ger": "de",
    "deu": "de",
    "gre": "el",
    "ell": "el",
    "heb": "he",
    "hin": "hi",
    "hun": "hu",
    "ita": "it",
    "jpn": "ja",
    "kor": "ko",
    "lat": "la",
    "nor": "no",
    "pol": "pl",
    "por": "pt",
    "rum": "ro",
    "ron": "ro",
    "rus": "ru",
    "spa": "es",
    "swe": "sv",
    "tur": "tr",
    "ukr": "uk",
}
_CODE_RE = re.compile(r"[a-z]{2,3}")


def normalize_language(raw: object) -> str | None:
    """Return ``raw`` as a lower-case language code (639-1 where known), or None if unusable.

    ``"en"``, ``"EN"``, ``"en_US"``, ``"en-GB"`` and ``"eng"`` all give ``"en"``; an unknown
    three-letter code is kept as is; anything else gives None.
    """
    if not isinstance(raw, str):
        return None
    code = re.split(r"[_\-]", raw.strip().lower(), maxsplit=1)[0]
    if _CODE_RE.fullmatch(code) is None:
        return None
    return _ISO639_2.get(code, code)
