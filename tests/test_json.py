"""json_depth and parse_json: nesting is measured without recursion before anything is parsed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bookmeta import MAX_JSON_DEPTH, InvalidInput, json_depth, parse_json

# Characters that trip a naive bracket counter: brackets, quotes, backslashes, control chars.
TRICKY = st.text(alphabet=st.sampled_from('[]{}"\\/ ,:ab\n\t\x00\u00e9\u202e\U0001f600'))
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TRICKY
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY, inner, max_size=4),
    max_leaves=40,
)


def depth_of(value: Any) -> int:
    """The nesting depth of a parsed value, by its definition."""
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


@st.composite
def chains(draw: st.DrawFn) -> Any:
    """A deep chain of lists and objects (up to 300 levels) around a tricky string."""
    value: Any = draw(TRICKY)
    for is_list in draw(st.lists(st.booleans(), max_size=300)):
        value = [value, draw(TRICKY)] if is_list else {draw(TRICKY): value}
    return value


def dump(value: Any, data: st.DataObject) -> str:
    """``value`` as JSON text in one of the layouts a client may send."""
    indent = data.draw(st.sampled_from([None, 0, 2, "\t"]))
    ascii_only = data.draw(st.booleans())
    return json.dumps(value, indent=indent, ensure_ascii=ascii_only)


@given(VALUES | chains(), st.data())
def test_json_depth_matches_the_depth_of_what_json_loads_parses(
    value: Any, data: st.DataObject
) -> None:
    """For any JSON text, json_depth is the nesting depth of json.loads' result."""
    text = dump(value, data)
    assert json_depth(text) == depth_of(json.loads(text))


@given(VALUES | chains(), st.data())
def test_a_cut_text_is_never_deeper_than_the_whole(value: Any, data: st.DataObject) -> None:
    """Truncated JSON (cut anywhere, even inside a string) scans no deeper than the whole."""
    text = dump(value, data)
    cut = data.draw(st.integers(0, len(text)))
    assert json_depth(text[:cut]) <= json_depth(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", 0, id="empty"),
        pytest.param('"[[[{{{"', 0, id="brackets-in-a-string"),
        pytest.param('["\\"[[", "]"]', 1, id="escaped-quote-then-brackets"),
        pytest.param('["\\\\", [[]]]', 3, id="escaped-backslash-ends-the-string"),
        pytest.param('["[[[', 1, id="unterminated-string-runs-to-the-end"),
        pytest.param('["a\\', 1, id="lone-trailing-backslash"),
        pytest.param("]]]]", 0, id="only-closers"),
        pytest.param("[" * 100_000, 100_000, id="unbalanced-openers"),
        pytest.param("[" * 100_000 + "]" * 100_000, 100_000, id="100k-levels"),
        pytest.param('{"isbns":' + "[" * 5000 + "]" * 5000 + "}", 5001, id="issue-body"),
        pytest.param("[" + "[]," * 10_000 + "[]]", 2, id="wide-not-deep"),
        pytest.param('"' + '\\"' * 50_000, 0, id="escaped-quotes-never-closed"),
    ],
)
def test_json_depth_cases(text: str, expected: int) -> None:
    """Strings, escapes, truncation and huge nesting are measured exactly, without recursion."""
    assert json_depth(text) == expected


def test_parse_json_refuses_deep_nesting_before_parsing() -> None:
    """100,000 levels are refused by the scan with a message naming the limit."""
    with pytest.raises(InvalidInput, match=f"nested deeper than {MAX_JSON_DEPTH} levels") as exc:
        parse_json(b"[" * 100_000 + b"]" * 100_000)
    assert exc.value.param == "body"


def test_parse_json_accepts_the_limit_and_refuses_one_more() -> None:
    """Exactly MAX_JSON_DEPTH levels parse; one more does not."""
    assert parse_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    with pytest.raises(InvalidInput, match="nested deeper"):
        parse_json("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))


@pytest.mark.parametrize(
    "data", [b"\xff\xfe", b"not json", b"", b'{"a": 1'], ids=["binary", "text", "empty", "cut"]
)
def test_parse_json_names_the_param_for_anything_else(data: bytes) -> None:
    """Undecodable or malformed input raises InvalidInput naming the parameter."""
    with pytest.raises(InvalidInput) as exc:
        parse_json(data, param="args")
    assert exc.value.param == "args"
    assert "valid UTF-8 JSON" in str(exc.value)


def test_parse_json_accepts_a_utf8_bom() -> None:
    """A UTF-8 byte order mark is not an error."""
    assert parse_json(b'\xef\xbb\xbf{"a": [1]}') == {"a": [1]}
