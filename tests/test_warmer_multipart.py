"""The upload form parser: RFC 7578 parameters, caps on parts and header size, linear scans."""

from __future__ import annotations

import json

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from test_warmer_support import AUTH, WARMER, library, make_system

from warmer_app.multipart import (
    MAX_HEADER_BYTES,
    MAX_PARTS,
    MultipartError,
    header_params,
    read_file_part,
)

CT = "multipart/form-data; boundary=B"


def form(*parts: bytes, boundary: bytes = b"B") -> bytes:
    """A form body from raw parts (each: header lines, blank line, content)."""
    out = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
    return out + b"--" + boundary + b"--\r\n"


def file_part(disposition: str, content: bytes = b"a,b\r\n1,2") -> bytes:
    return f"Content-Disposition: {disposition}\r\nContent-Type: text/csv\r\n\r\n".encode() + (
        content
    )


@pytest.mark.parametrize(
    ("disposition", "filename"),
    [
        pytest.param(
            "form-data; name=\"file\"; filename*=UTF-8''name(1).csv", "name(1).csv", id="ext-parens"
        ),
        pytest.param(
            'form-data; name="file"; filename="fallback.csv"; '
            "filename*=UTF-8''na%C3%AFve%20(1).csv",
            "na\u00efve (1).csv",
            id="ext-wins-over-plain",
        ),
        pytest.param(
            "form-data; name=\"file\"; filename*=utf-8'en'%E6%9D%91%E4%B8%8A.csv",
            "\u6751\u4e0a.csv",
            id="ext-with-language",
        ),
        pytest.param(
            'form-data; name="file"; filename*=UTF-8\'\'%FF.csv; filename="ok.csv"',
            "ok.csv",
            id="undecodable-ext-ignored",
        ),
        pytest.param(
            'form-data; name="file"; filename="my (old) list.csv"', "my (old) list.csv", id="parens"
        ),
        pytest.param(
            'form-data; name="file"; filename="a;b \\"c\\".csv"', 'a;b "c".csv', id="quoted-escapes"
        ),
        pytest.param(
            'form-data; name="file"; filename="Bibliot\u00e8que.csv"',
            "Bibliot\u00e8que.csv",
            id="raw-utf8",
        ),
        pytest.param(
            'form-data; name="file"; filename="C:\\Users\\me\\lib.csv"', "lib.csv", id="client-path"
        ),
        pytest.param("form-data; name=file; filename=plain.csv", "plain.csv", id="unquoted"),
        pytest.param('FORM-DATA; NAME="file"; FILENAME="up.csv"', "up.csv", id="case"),
    ],
)
def test_filenames_are_read_as_rfc_7578_says(disposition: str, filename: str) -> None:
    """Quoted strings, RFC 5987 ext-values and parentheses (text, not comments) are kept."""
    part = read_file_part(form(file_part(disposition)), CT)
    assert (part.field, part.filename, part.content) == ("file", filename, b"a,b\r\n1,2")


def test_too_many_parts_are_refused_before_the_rest_is_parsed() -> None:
    """10,000 tiny parts (the file last) are refused at part MAX_PARTS + 1."""
    tiny = [b'Content-Disposition: form-data; name="x"\r\n\r\ny'] * 9_999
    body = form(*tiny, file_part('form-data; name="file"; filename="lib.csv"'))
    with pytest.raises(MultipartError, match=f"more than {MAX_PARTS} parts"):
        read_file_part(body, CT)


def test_the_part_cap_itself_is_accepted() -> None:
    """MAX_PARTS parts, the file last, parse."""
    tiny = [b'Content-Disposition: form-data; name="x"\r\n\r\ny'] * (MAX_PARTS - 1)
    body = form(*tiny, file_part('form-data; name="file"; filename="lib.csv"'))
    assert read_file_part(body, CT).filename == "lib.csv"


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        pytest.param(b"x", "multipart/form-data", "without a boundary", id="no-boundary"),
        pytest.param(b"x", 'multipart/form-data; boundary=""', "without a boundary", id="empty"),
        pytest.param(b"x", "multipart/form-data; boundary=" + "b" * 71, "1-70", id="long-boundary"),
        pytest.param(b"no boundary here", CT, "does not contain its boundary", id="missing"),
        pytest.param(
            b'--B\r\nContent-Disposition: form-data; name="file"\r\n\r\ncut',
            CT,
            "no closing boundary",
            id="cut-short",
        ),
        pytest.param(b"--B", CT, "cut short", id="only-a-delimiter"),
        pytest.param(b"--Bxyz\r\n\r\nq\r\n--B--", CT, "malformed", id="boundary-prefix-only"),
        pytest.param(
            b"--B\r\nX-Pad: " + b"p" * MAX_HEADER_BYTES + b"\r\n\r\nq\r\n--B--",
            CT,
            f"longer than {MAX_HEADER_BYTES} bytes",
            id="huge-headers",
        ),
        pytest.param(
            form(b'Content-Disposition: form-data; name="a"\r\n\r\nx'),
            CT,
            "no file in the form",
            id="no-file",
        ),
    ],
)
def test_malformed_forms_raise_multipart_error(
    body: bytes, content_type: str, message: str
) -> None:
    """Every way a form can be broken raises MultipartError saying which."""
    with pytest.raises(MultipartError, match=message):
        read_file_part(body, content_type)


def test_preamble_epilogue_padding_and_headerless_parts_are_tolerated() -> None:
    """Text before the first boundary and after the last, and whitespace after a delimiter."""
    body = (
        b"preamble\r\n--B \t\r\n\r\nheaderless\r\n"
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="f.csv"\r\n\r\nok'
        b"\r\n--B--\r\nepilogue"
    )
    assert read_file_part(body, CT).content == b"ok"


def test_the_first_file_is_taken_when_no_part_is_named_file() -> None:
    """Without a ``file`` field, the first part carrying a filename is the upload."""
    body = form(
        b'Content-Disposition: form-data; name="note"\r\n\r\nhi',
        file_part('form-data; name="upload"; filename="one.csv"', b"1"),
        file_part('form-data; name="other"; filename="two.csv"', b"2"),
    )
    assert (read_file_part(body, CT).field, read_file_part(body, CT).content) == ("upload", b"1")


def test_header_params_of_a_content_type() -> None:
    """The boundary keeps its case; quotes are removed."""
    assert header_params('multipart/form-data; boundary="--AbC;d"') == (
        "multipart/form-data",
        {"boundary": "--AbC;d"},
    )


@given(
    st.binary(max_size=2_000),
    st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=40),
)
def test_any_content_and_filename_survive_a_round_trip(content: bytes, filename: str) -> None:
    """Bytes come back byte for byte; a UTF-8 ext-value filename comes back as sent."""
    boundary = b"----hypothesis7MA4YWxkTrZu0gW"
    assume(b"\r\n--" + boundary not in b"\r\n" + content)
    encoded = "".join(f"%{b:02X}" for b in filename.encode("utf-8"))
    disposition = f"form-data; name=\"file\"; filename*=UTF-8''{encoded}"
    body = form(file_part(disposition, content), boundary=boundary)
    part = read_file_part(body, f"multipart/form-data; boundary={boundary.decode()}")
    assert part.content == content
    assert part.filename == filename.replace("\\", "/").rsplit("/", 1)[-1]


async def test_an_upload_with_ten_thousand_parts_is_a_400() -> None:
    """Through the warmer: the 0.6 MB form of 10,000 tiny parts is refused as bad_multipart."""
    system = make_system()
    tiny = [b'Content-Disposition: form-data; name="x"\r\n\r\ny'] * 9_999
    body = form(*tiny, file_part('form-data; name="file"; filename="lib.csv"', b"x"))
    resp = await system.fetch(
        WARMER, "/libraries", method="POST", headers={**AUTH, "content-type": CT}, body=body
    )
    error = json.loads(await resp.text())["error"]
    assert (resp.status, error["code"]) == (400, "bad_multipart")
    assert f"more than {MAX_PARTS} parts" in error["message"]


async def test_an_upload_keeps_a_parenthesized_ext_filename() -> None:
    """Through the warmer: ``filename*=UTF-8''name(1).csv`` is stored as name(1).csv."""
    system = make_system()
    disposition = "form-data; name=\"file\"; filename*=UTF-8''name(1).csv"
    body = form(file_part(disposition, library("generic.csv")))
    resp = await system.fetch(
        WARMER, "/libraries", method="POST", headers={**AUTH, "content-type": CT}, body=body
    )
    assert resp.status == 201, await resp.text()
    assert json.loads(await resp.text())["filename"] == "name(1).csv"
