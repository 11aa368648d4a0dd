"""A seeded generator of Goodreads-format library exports for benchmarks and load tests."""

from __future__ import annotations

import csv
import io
import random

from bookmeta import to_isbn10

GOODREADS_HEADER = [
    "Book Id", "Title", "Author", "Author l-f", "Additional Authors", "ISBN", "ISBN13",
    "My Rating", "Average Rating", "Publisher", "Binding", "Number of Pages", "Year Published",
    "Original Publication Year", "Date Read", "Date Added", "Bookshelves",
    "Bookshelves with positions", "Exclusive Shelf", "My Review", "Spoiler", "Private Notes",
    "Read Count", "Owned Copies",
]  # fmt: skip

_FIRST = [
    "Ursula", "Frank", "Octavia", "Isaac", "Mary", "Jane", "Leo", "Chinua", "Haruki", "Zadie",
    "Gabriel", "Toni", "Kazuo", "Margaret", "Italo", "Jorge", "Doris", "Stanisław", "Clarice",
    "Naguib", "Wisława", "Fyodor", "Selma", "Ngũgĩ", "Elena",
]  # fmt: skip
_LAST = [
    "Le Guin", "Herbert", "Butler", "Asimov", "Shelley", "Austen", "Tolstoy", "Achebe",
    "Murakami", "Smith", "García Márquez", "Morrison", "Ishiguro", "Atwood", "Calvino", "Borges",
    "Lessing", "Lem", "Lispector", "Mahfouz", "Szymborska", "Dostoevsky", "Lagerlöf",
    "wa Thiong'o", "Ferrante",
]  # fmt: skip
_WORDS = [
    "Dune", "Night", "River", "House", "Glass", "Winter", "Empire", "Garden", "Silence",
    "Memory", "Stone", "Light", "City", "Sea", "Fire", "Dream", "Road", "Mirror",
]  # fmt: skip


def isbn13_from(n: int) -> str:
    """A valid 978-prefixed ISBN-13 derived from ``n``."""
    body = f"978{n % 10**9:09d}"
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def goodreads_export(
    books: int = 1000, *, isbn_share: float = 0.6, authors: int = 350, seed: int = 7
) -> str:
    """A Goodreads CSV with ``books`` rows, about ``isbn_share`` of them with ISBNs."""
    rng = random.Random(seed)
    names = sorted({f"{f} {last}" for f in _FIRST for last in _LAST})
    rng.shuffle(names)
    pool = names[:authors]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(GOODREADS_HEADER)
    for i in range(books):
        author = pool[i % authors] if i < authors else rng.choice(pool)
        first, _, last = author.partition(" ")
        title = f"The {rng.choice(_WORDS)} of {rng.choice(_WORDS)}, Vol. {i}"
        if rng.random() < isbn_share:
            isbn13 = isbn13_from(100_000 + i * 7919)
            isbn10 = to_isbn10(isbn13) or ""
            isbn_cells = [f'="{isbn10}"', f'="{isbn13}"']
        else:
            isbn_cells = ['=""', '=""']
        review = "Loved it.<br/>Line two,\nwith a newline." if rng.random() < 0.1 else ""
        writer.writerow(
            [
                str(10_000 + i), title, author, f"{last}, {first}", "", *isbn_cells,
                str(rng.randint(0, 5)), f"{rng.uniform(3, 5):.2f}", "Ace", "Paperback",
                str(rng.randint(90, 900)), str(rng.randint(1950, 2025)), "", "",
                "2024/01/02", "to-read", "to-read (#1)", "to-read", review, "", "", "0", "0",
            ]
        )  # fmt: skip
    return out.getvalue()


if __name__ == "__main__":
    print(goodreads_export(), end="")
