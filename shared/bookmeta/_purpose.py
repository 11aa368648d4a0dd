"""Why an ISBNdb call is made: the contract between its callers and the isbndb worker.

The isbndb worker's key guard keeps part of the daily quota for warming, so public traffic
cannot spend it all. Callers say which they are: over HTTP in the ``x-isbndb-purpose``
header, over RPC as the last positional argument. Absent means public.
"""

from __future__ import annotations

from enum import StrEnum

from ._errors import InvalidInput

PURPOSE_HEADER = "x-isbndb-purpose"


class Purpose(StrEnum):
    """``public``: a search someone is waiting for; ``warm``: the warmer filling caches."""

    PUBLIC = "public"
    WARM = "warm"


def parse_purpose(value: object) -> Purpose:
    """The purpose a caller sent; None or an empty string is ``PUBLIC``.

    Raises:
        InvalidInput: anything but ``public`` or ``warm`` (case and spaces ignored).
    """
    if value is None:
        return Purpose.PUBLIC
    if isinstance(value, str):
        text = value.strip().lower()
        if not text:
            return Purpose.PUBLIC
        for purpose in Purpose:
            if text == purpose.value:
                return purpose
    shown = repr(value)[:40]
    raise InvalidInput("purpose", f"must be 'public' or 'warm', got {shown}")
