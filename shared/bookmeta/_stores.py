"""The narrow storage seams: the few KV, R2 and SQLite operations the code actually calls.

`bookmeta.runtime` adapts the runtime's bindings to these; tests use the strict fakes
in `tests/harness` through the same adapter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

KV_KEY_MAX_BYTES = 512
KV_VALUE_MAX_BYTES = 25 * 1024 * 1024
KV_METADATA_MAX_BYTES = 1024
KV_MIN_TTL_S = 60
R2_CUSTOM_METADATA_MAX_BYTES = 8192
R2_DELETE_MAX_KEYS = 1000
SQL_MAX_PARAMS = 100  # bound parameters per statement in a Durable Object's SQLite

SqlValue = int | float | str | bytes | None


@dataclass(frozen=True, slots=True)
class KVEntry:
    """A KV value with its metadata."""

    value: str | None
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class KVListing:
    """One page of `KVStore.list`."""

    keys: list[str]
    cursor: str | None = None


class KVStore(Protocol):
    """Workers KV: eventually consistent, TTL >= 60 s, 1 write/s per key."""

    async def get(self, key: str) -> str | None: ...

    async def get_with_metadata(self, key: str) -> KVEntry: ...

    async def put(
        self,
        key: str,
        value: str,
        *,
        ttl_s: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def list(
        self, prefix: str, *, cursor: str | None = None, limit: int = 1000
    ) -> KVListing: ...


@dataclass(frozen=True, slots=True)
class Blob:
    """An R2 object read back: its body and metadata."""

    body: bytes
    custom_metadata: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None

    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")


@dataclass(frozen=True, slots=True)
class BlobListing:
    """One page of `BlobStore.list`; ``metadata`` (custom metadata by key) only when asked."""

    keys: list[str]
    cursor: str | None = None
    metadata: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


class BlobStore(Protocol):
    """R2: no TTL (expiry lives in custom metadata), metadata <= 8 KiB."""

    async def get(self, key: str) -> Blob | None: ...

    async def head(self, key: str) -> Mapping[str, str] | None: ...

    async def put(
        self,
        key: str,
        value: str | bytes,
        *,
        custom_metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Delete up to ``R2_DELETE_MAX_KEYS`` keys in one operation."""
        ...

    async def list(
        self,
        prefix: str,
        *,
        cursor: str | None = None,
        limit: int = 1000,
        include_metadata: bool = False,
    ) -> BlobListing: ...


class SqlStore(Protocol):
    """A Durable Object's SQLite database (``ctx.storage.sql``): synchronous, one statement.

    ``execute`` runs ``sql`` with ``?`` placeholders bound to ``params`` and returns every
    row as a plain dict (column name -> value; BLOBs as bytes). It raises what the
    database raises (a constraint, a syntax error).
    """

    def execute(self, sql: str, *params: SqlValue) -> list[dict[str, SqlValue]]: ...
