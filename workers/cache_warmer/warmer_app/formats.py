"""Library exports: decode the upload, detect the format from the header, parse the rows (pure).

Formats (REFERENCE.md): Goodreads (24 or 31 columns, ISBNs as ``="0441013597"``), StoryGraph
(``ISBN/UID`` may be an ASIN), LibraryThing TSV (bracketed ISBNs, ``Last, First`` authors),
Calibre catalog CSV (``identifiers`` such as ``isbn:9780756411800``, authors joined by `` & ``)
and a generic CSV with isbn/isbn13/title/author columns.

Every rejection is an :class:`UploadRejected` carrying the HTTP status and a message that says
what is wrong; a parsed library lists per-row problems with the line where the row starts.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from bookmeta import (
    MAX_JSON_DEPTH,
    InvalidISBN,
    canonical,
    clean,
    extract_all,
    json_depth,
    normalize_display,
    normalize_key,
)

MAX_PROBLEMS = 1000
_ASIN_RE = re.compile(r"B0[0-9A-Z]{8}")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class LibraryFormat(StrEnum):
    """The export formats we recognise."""

    GOODREADS = "goodreads"
    STORYGRAPH = "storygraph"
    LIBRARYTHING = "librarything"
    CALIBRE = "calibre"
    GENERIC = "generic"


class UploadRejected(Exception):  # noqa: N818 (a verdict, not a bug)
    """The upload cannot be imported; ``status`` is the 4xx to answer with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with one row; ``line`` is where the row starts (the header is line 1)."""

    line: int
    message: str


@dataclass(frozen=True, slots=True)
class Book:
    """One row reduced to what warming needs."""

    line: int
    title: str
    authors: tuple[str, ...]
    isbn13: str | None


@dataclass(frozen=True)
class ParsedLibrary:
    """A parsed export: the books, in file order, and the problems found."""

    format: LibraryFormat
    variant: str
    books: list[Book]
    problems: list[Problem]
    problems_total: int

    @property
    def rows(self) -> int:
        """Data rows (blank lines excluded)."""
        return len(self.books)

    @property
    def isbns(self) -> list[str]:
        """Valid ISBNs as canonical ISBN-13, de-duplicated, in file order."""
        return list(dict.fromkeys(b.isbn13 for b in self.books if b.isbn13 is not None))

    @property
    def lines_without_isbn(self) -> list[int]:
        """Lines of rows without a usable ISBN (their authors are still warmed)."""
        return [b.line for b in self.books if b.isbn13 is None]

    @property
    def authors(self) -> list[str]:
        """Distinct authors (by cache-key form), first spelling seen wins, in file order."""
        seen: dict[str, str] = {}
        for book in self.books:
            for name in book.authors:
                key = normalize_key(name)
                if key:
                    seen.setdefault(key, name)
        return list(seen.values())


# -- decoding --------------------------------------------------------------------------------


def decode_upload(data: bytes) -> str:
    """Return the upload as text, BOM removed; raise UploadRejected for anything not UTF-8 text."""
    if not data.strip():
        raise UploadRejected(400, "empty_upload", "the upload is empty; send a CSV export")
    if data.startswith(_UTF16_BOMS):
        raise UploadRejected(
            415, "unsupported_encoding", "the file is UTF-16; re-save or export it as UTF-8 CSV"
        )
    if data.startswith(b"PK\x03\x04"):
        raise UploadRejected(
            415, "not_text", "the file is a ZIP archive; unzip it and upload the CSV inside"
        )
    if b"\x00" in data[:65536]:
        raise UploadRejected(415, "not_text", "the file is binary (NUL bytes); send a CSV export")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UploadRejected(
            400,
            "invalid_encoding",
            f"the file is not valid UTF-8 (byte {exc.start}, line {line}); export it as UTF-8",
        ) from None
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        # Measured before json.loads ever sees it: deep nesting aborts the isolate (bookmeta).
        if json_depth(stripped) > MAX_JSON_DEPTH:
            raise UploadRejected(
                415,
                "json_not_supported",
                f"the file is JSON-like, nested deeper than {MAX_JSON_DEPTH} levels; "
                "upload a CSV or TSV library export",
            )
        try:
            json.loads(stripped)
        except ValueError:
            pass
        else:
            raise UploadRejected(
                415, "json_not_supported", "the file is JSON; upload a CSV or TSV library export"
            )
    return text


# -- header detection ------------------------------------------------------------------------


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


AuthorReader = Callable[[str], list[str]]


@dataclass(frozen=True)
class FormatSpec:
    """Where one format keeps ISBNs, title and authors."""

    format: LibraryFormat
    variant: str
    isbn_columns: tuple[int, ...]
    title_column: int | None
    author_columns: tuple[int, ...]
    split_authors: AuthorReader


def _one_author(cell: str) -> list[str]:
    name = normalize_display(cell)
    return [name] if name else []


def _comma_authors(cell: str) -> list[str]:
    return [n for n in (normalize_display(p) for p in cell.split(",")) if n]


def _ampersand_authors(cell: str) -> list[str]:
    return [n for n in (normalize_display(p) for p in cell.split("&")) if n]


def _last_first_author(cell: str) -> list[str]:
    name = normalize_display(cell)
    if name.count(",") == 1:
        last, first = (p.strip() for p in name.split(","))
        name = f"{first} {last}".strip()
    return [name] if name else []


def _index(header: Sequence[str], *names: str) -> int | None:
    lowered = [h.strip() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


def _indices(header: Sequence[str], *names: str) -> tuple[int, ...]:
    out = []
    for name in names:
        i = _index(header, name)
        if i is not None:
            out.append(i)
    return tuple(out)


def detect_format(header: Sequence[str], *, tabs: bool) -> FormatSpec | None:
    """The format whose header this is, or None when nothing matches."""
    names = {h.strip() for h in header}
    squashed = {_squash(h): i for i, h in enumerate(header)}
    if not tabs and {"Book Id", "Title", "Author", "ISBN", "ISBN13", "Exclusive Shelf"} <= names:
        return FormatSpec(
            LibraryFormat.GOODREADS,
            f"{len(header)} columns",
            _indices(header, "ISBN13", "ISBN"),
            _index(header, "Title"),
            _indices(header, "Author"),
            _one_author,
        )
    if (
        not tabs
        and "Title" in names
        and names & {"ISBN/UID", "ISBN"}
        and names & {"Authors", "Author"}
        and names & {"Read Status", "Star Rating", "Moods"}
    ):
        return FormatSpec(
            LibraryFormat.STORYGRAPH,
            "current" if "Authors" in names else "older",
            _indices(header, "ISBN/UID", "ISBN"),
            _index(header, "Title"),
            _indices(header, "Authors", "Author"),
            _comma_authors,
        )
    if tabs and "Primary Author" in names and names & {"ISBN", "ISBNs"}:
        return FormatSpec(
            LibraryFormat.LIBRARYTHING,
            "tsv",
            _indices(header, "ISBN", "ISBNs"),
            _index(header, "Title"),
            _indices(header, "Primary Author"),
            _last_first_author,
        )
    if (
        {"authors", "title"} <= names
        and names & {"identifiers", "isbn"}
        and (names & {"author_sort", "uuid", "title_sort", "formats"})
    ):
        return FormatSpec(
            LibraryFormat.CALIBRE,
            "catalog",
            _indices(header, "isbn", "identifiers"),
            _index(header, "title"),
            _indices(header, "authors"),
            _ampersand_authors,
        )
    isbn_cols = tuple(
        i
        for key, i in sorted(squashed.items(), key=lambda kv: (kv[0] != "isbn13", kv[1]))
        if key.startswith("isbn")
    )
    author_col = next(
        (squashed[k] for k in ("author", "authors", "authorname", "creator") if k in squashed),
        None,
    )
    title_col = next((squashed[k] for k in ("title", "booktitle", "name") if k in squashed), None)
    if isbn_cols or author_col is not None:
        return FormatSpec(
            LibraryFormat.GENERIC,
            "tsv" if tabs else "csv",
            isbn_cols,
            title_col,
            () if author_col is None else (author_col,),
            _comma_authors if author_col is not None and "authors" in squashed else _one_author,
        )
    return None


# -- rows ------------------------------------------------------------------------------------


def _calibre_isbns(cell: str) -> list[str]:
    """ISBN values from ``goodreads:1,isbn:9780756411800`` (other identifiers ignored)."""
    if ":" not in cell:
        return [cell]
    return [
        value
        for scheme, _, value in (p.strip().partition(":") for p in cell.split(","))
        if scheme.lower() == "isbn"
    ]


def _isbn_from(cell: str, label: str, spec: FormatSpec) -> tuple[str | None, str | None]:
    """(isbn13, problem) for one cell; both None when the cell is empty."""
    values = (
        _calibre_isbns(cell)
        if spec.format is LibraryFormat.CALIBRE and label == "identifiers"
        else [cell]
    )
    problem = None
    for value in values:
        bare = clean(value)
        if not bare:
            continue
        if _ASIN_RE.fullmatch(bare):
            problem = f"{label} {bare!r} is an ASIN (Amazon id), not an ISBN"
            continue
        try:
            return canonical(value), None
        except InvalidISBN as exc:
            found = extract_all(value)
            if found:
                return found[0], None
            problem = f"{label}: {exc}"
    return None, problem


def _rows(text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(start line, fields) for every record; csv errors become UploadRejected with the line."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise UploadRejected(
                422, "malformed_csv", f"line {start}: {exc} (is a quote left open?)"
            ) from None
        yield start, row
        start = reader.line_num + 1


def parse_library(text: str) -> ParsedLibrary:
    """Detect the format of ``text`` and parse its rows.

    Raises:
        UploadRejected: no recognisable header, no rows, or malformed CSV (422).
    """
    first_line = text.lstrip("\r\n").split("\n", 1)[0]
    tabs = first_line.count("\t") > first_line.count(",")
    rows = _rows(text.lstrip("\r\n"), "\t" if tabs else ",")
    try:
        _, header = next(rows)
    except StopIteration:
        raise UploadRejected(
            400, "empty_upload", "the upload is empty; send a CSV export"
        ) from None
    spec = detect_format(header, tabs=tabs)
    if spec is None:
        shown = ", ".join(h.strip() for h in header)[:200]
        raise UploadRejected(
            422,
            "unknown_format",
            f"unrecognised header ({shown!r}): expected a Goodreads, StoryGraph, LibraryThing "
            "(TSV) or Calibre export, or a CSV with isbn/isbn13/title/author columns",
        )
    offset = len(text) - len(text.lstrip("\r\n"))
    skipped_lines = text[:offset].count("\n")
    books: list[Book] = []
    problems: list[Problem] = []
    total = 0

    def note(line: int, message: str) -> None:
        nonlocal total
        total += 1
        if len(problems) < MAX_PROBLEMS:
            problems.append(Problem(line, message))

    for start, row in rows:
        line = start + skipped_lines
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            note(line, f"expected {len(header)} fields, found {len(row)}")
        cells = row + [""] * (len(header) - len(row))
        isbn13 = None
        isbn_problem = None
        for column in spec.isbn_columns:
            isbn13, problem = _isbn_from(cells[column], header[column].strip(), spec)
            if isbn13 is not None:
                break
            isbn_problem = isbn_problem or problem
        if isbn13 is None and isbn_problem is not None:
            note(line, isbn_problem)
        authors = tuple(a for c in spec.author_columns for a in spec.split_authors(cells[c]))
        title = "" if spec.title_column is None else normalize_display(cells[spec.title_column])
        if isbn13 is None and not authors:
            note(line, "no usable ISBN and no author: nothing to warm for this row")
        books.append(Book(line, title, authors, isbn13))
    if not books:
        raise UploadRejected(
            422, "no_rows", f"the header looks like a {spec.format} export but there are no rows"
        )
    return ParsedLibrary(spec.format, spec.variant, books, problems, total)
