"""JSON from untrusted text, with its nesting bounded before it is parsed.

``json.loads`` recurses once per nested array or object. On the Workers runtime (Pyodide) the
wasm stack overflows at a few thousand levels, before Python raises ``RecursionError``, and the
runtime aborts the whole isolate: a 10 KB body of brackets took every worker down. So every
untrusted text is measured first by ``json_depth``, a linear scan that never recurses, and only
text nested at most ``MAX_JSON_DEPTH`` levels deep reaches ``json.loads``.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from ._errors import InvalidInput

MAX_JSON_DEPTH = 32

# A JSON string: from a quote to the next unescaped quote, or to the end of an unterminated
# one. Possessive quantifiers and the optional closing quote make every match succeed where it
# starts, so the scan stays linear whatever the input (no backtracking, no retried starts).
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]++")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in ``text``: 0 for a scalar, 1 for ``[]``.

    Brackets inside strings (escaped quotes included) do not count. Linear in ``len(text)``
    and never recursive. For text that is not JSON it is an upper bound of how deep
    ``json.loads`` recurses before it fails.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if not brackets:
        return 0
    return max(0, max(accumulate(map(_STEP.__getitem__, brackets))))


def parse_json(data: bytes | str, *, param: str = "body", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse untrusted JSON (UTF-8 when bytes).

    Raises:
        InvalidInput: naming ``param``, when ``data`` is not UTF-8, not JSON, or nested deeper
            than ``max_depth`` levels (checked before parsing).
    """
    invalid = f"{'request body' if param == 'body' else param} must be valid UTF-8 JSON"
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise InvalidInput(param, invalid) from exc
    if json_depth(text) > max_depth:
        raise InvalidInput(param, f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidInput(param, invalid) from exc
