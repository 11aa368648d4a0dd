"""Format detection and parsing of library exports (pure), one fixture per format."""

from __future__ import annotations

import pytest
from test_warmer_support import library

from warmer_app.formats import LibraryFormat, UploadRejected, decode_upload, parse_library
from warmer_app.multipart import MultipartError, read_file_part


def parse(name: str) -> object:
    """Parse a fixture file."""
    return parse_library(decode_upload(library(name)))


def test_goodreads_24_columns_unwraps_formula_isbns_and_keeps_rows_without_isbn() -> None:
    """="..." ISBNs become ISBN-13s, duplicates collapse, multi-line reviews keep line numbers."""
    lib = parse_library(decode_upload(library("goodreads_24.csv")))
    assert (lib.format, lib.variant, lib.rows) == (LibraryFormat.GOODREADS, "24 columns", 18)
    assert len(lib.isbns) == 12
    assert lib.isbns[0] == "9780441013593"
    assert "9780547928227" in lib.isbns  # 054792822X: ISBN-10 with an X check digit
    assert lib.lines_without_isbn == [17, 18, 20, 21, 23]
    assert "Stanisław Lem" in lib.authors
    assert "村上春樹" in lib.authors
    assert [(p.line, "check digit" in p.message) for p in lib.problems] == [(20, True)]
    assert lib.books[5].title == "The Hobbit, or There and Back Again"


def test_goodreads_31_columns_with_bom_and_crlf() -> None:
    """The older 31-column export, UTF-8 BOM and CRLF line ends."""
    lib = parse_library(decode_upload(library("goodreads_31.csv")))
    assert (lib.format, lib.variant) == (LibraryFormat.GOODREADS, "31 columns")
    assert lib.isbns == ["9780441013593"]
    assert lib.authors == ["Frank Herbert", "William Gibson"]


def test_storygraph_flags_asins_and_splits_authors() -> None:
    """ISBN/UID may be an ASIN: reported, not an ISBN; Authors is a comma list."""
    lib = parse_library(decode_upload(library("storygraph.csv")))
    assert lib.format is LibraryFormat.STORYGRAPH
    assert lib.isbns == ["9780593135204", "9780060853983"]
    assert "Neil Gaiman" in lib.authors
    assert [p.line for p in lib.problems] == [3]
    assert "ASIN" in lib.problems[0].message


def test_librarything_tsv_brackets_and_last_first_authors() -> None:
    """Bracketed ISBNs and `Last, First` authors from a tab-separated export."""
    lib = parse_library(decode_upload(library("librarything.tsv")))
    assert lib.format is LibraryFormat.LIBRARYTHING
    assert lib.isbns == ["9781598530124", "9780441013593"]
    assert lib.authors[:2] == ["Henry James", "Frank Herbert"]
    assert [p.line for p in lib.problems] == [4]


def test_calibre_identifiers_and_ampersand_authors() -> None:
    """isbn: inside identifiers, the isbn column, and authors joined by &."""
    lib = parse_library(decode_upload(library("calibre.csv")))
    assert lib.format is LibraryFormat.CALIBRE
    assert lib.isbns == ["9780756411800", "9780060853983"]
    assert lib.authors == [
        "Patrick Rothfuss",
        "Terry Pratchett",
        "Neil Gaiman",
        "Ursula K. Le Guin",
    ]


def test_generic_csv_with_hyphenated_isbn13_column() -> None:
    """A plain title/author/isbn13 CSV; a row with nothing to warm is a problem."""
    lib = parse_library(decode_upload(library("generic.csv")))
    assert lib.format is LibraryFormat.GENERIC
    assert lib.isbns == ["9780441013593", "9780451526342"]
    assert [p.line for p in lib.problems] == [4]


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        pytest.param(b"", 400, "empty_upload", id="empty"),
        pytest.param(b"  \r\n", 400, "empty_upload", id="blank"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00", 415, "not_text", id="binary"),
        pytest.param(b"PK\x03\x04rest", 415, "not_text", id="zip"),
        pytest.param("title\n".encode("utf-16"), 415, "unsupported_encoding", id="utf16"),
        pytest.param(b"title,author\nDune,Herb\xe9rt\n", 400, "invalid_encoding", id="latin1"),
        pytest.param(b'{"books": []}', 415, "json_not_supported", id="json"),
    ],
)
def test_uploads_that_are_not_utf8_csv_are_rejected_with_a_reason(
    data: bytes, status: int, code: str
) -> None:
    """Each kind of wrong upload gets its own 4xx and code."""
    with pytest.raises(UploadRejected) as info:
        parse_library(decode_upload(data))
    assert (info.value.status, info.value.code) == (status, code)
    assert info.value.message


@pytest.mark.parametrize(
    ("text", "code"),
    [
        pytest.param("foo,bar\n1,2\n", "unknown_format", id="unknown-header"),
        pytest.param("title,author,isbn\n", "no_rows", id="header-only"),
        pytest.param(
            'title,author,isbn\n"Dune,Frank Herbert,1\n', "malformed_csv", id="open-quote"
        ),
    ],
)
def test_csv_that_cannot_be_imported_is_422(text: str, code: str) -> None:
    """Unknown header, no rows and an unbalanced quote are 422 with a message."""
    with pytest.raises(UploadRejected) as info:
        parse_library(decode_upload(text.encode()))
    assert (info.value.status, info.value.code) == (422, code)


def test_invalid_utf8_message_names_the_line() -> None:
    """The encoding error says where the bad byte is."""
    with pytest.raises(UploadRejected) as info:
        decode_upload(b"title,author\nDune,Frank\nX,Herb\xe9rt\n")
    assert "line 3" in info.value.message


def test_multipart_reader_finds_the_file_field_and_keeps_bytes() -> None:
    """The file part is returned byte for byte, whatever other fields come first."""
    body = (
        b'--B\r\nContent-Disposition: form-data; name="token"\r\n\r\nx\r\n'
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="gr.csv"\r\n'
        b'Content-Type: text/csv\r\n\r\na,b\r\n1,"x\r\ny"\r\n--B--\r\n'
    )
    part = read_file_part(body, "multipart/form-data; boundary=B")
    assert (part.field, part.filename, part.content) == ("file", "gr.csv", b'a,b\r\n1,"x\r\ny"')


def test_multipart_without_boundary_or_file_is_an_error() -> None:
    """No boundary, or no file part, raises MultipartError."""
    with pytest.raises(MultipartError):
        read_file_part(b"x", "multipart/form-data")
    with pytest.raises(MultipartError):
        read_file_part(
            b'--B\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n--B--\r\n',
            "multipart/form-data; boundary=B",
        )
