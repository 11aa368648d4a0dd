"""A small multipart/form-data reader (the stdlib ``cgi`` module is gone in Python 3.13)."""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.policy import HTTP


class MultipartError(ValueError):
    """The body is not the multipart/form-data its Content-Type announces."""


@dataclass(frozen=True, slots=True)
class FilePart:
    """One uploaded file: the form field, the client's filename (may be empty) and the bytes."""

    field: str
    filename: str
    content: bytes


def is_multipart(content_type: str | None) -> bool:
    """True for a ``multipart/form-data`` Content-Type."""
    return (content_type or "").split(";", 1)[0].strip().lower() == "multipart/form-data"


def read_file_part(body: bytes, content_type: str, *, field: str = "file") -> FilePart:
    """The part named ``field`` (or else the first part with a filename) of a form upload.

    Raises:
        MultipartError: no boundary, an unparseable body, or no file part.
    """
    if "boundary=" not in content_type.lower():
        raise MultipartError("multipart/form-data without a boundary parameter")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message: Message = message_from_bytes(head + body, policy=HTTP)
    if not message.is_multipart():
        raise MultipartError("the body is not valid multipart/form-data")
    candidates: list[FilePart] = []
    parts = message.get_payload()
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, Message):
            continue
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename() or ""
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        found = FilePart(name, filename, payload)
        if name == field:
            return found
        if filename:
            candidates.append(found)
    if candidates:
        return candidates[0]
    raise MultipartError(f"no file in the form: send the CSV in a field named {field!r}")
