"""Strict fakes of the KV and R2 bindings, with the runtime's (JS-shaped) API and limits."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from workers import JsDict

from bookmeta._clock import Clock, FakeClock

KV_KEY_MAX = 512
KV_VALUE_MAX = 25 * 1024 * 1024
KV_META_MAX = 1024
KV_MIN_TTL = 60
R2_KEY_MAX = 1024
R2_META_MAX = 8192


class KVError(Exception):
    """What the runtime throws for a rejected KV operation (a JS Error)."""


class R2Error(Exception):
    """What the runtime throws for a rejected R2 operation."""


@dataclass
class _KVItem:
    value: str
    expires_at: float | None
    metadata: Any


@dataclass
class FakeKV:
    """Workers KV namespace: TTLs, key/metadata limits, 1 write/s per key, list paging.

    ``failing`` names operations (``get``, ``put``, ``delete``, ``list``) that throw, as
    during an outage, a KV incident or past the Free plan's daily limits.
    """

    clock: Clock = field(default_factory=FakeClock)
    enforce_write_rate: bool = True
    items: dict[str, _KVItem] = field(default_factory=dict)
    last_write: dict[str, float] = field(default_factory=dict)
    ops: dict[str, int] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)

    def _count(self, op: str) -> None:
        self.ops[op] = self.ops.get(op, 0) + 1
        if op in self.failing:
            raise KVError(f"KV {op.upper()} failed: 503 Service Unavailable (injected fault)")

    def _check_key(self, key: Any) -> None:
        if not isinstance(key, str) or key == "":
            raise KVError("KV key must be a non-empty string")
        if key in (".", ".."):
            raise KVError(f"Illegal key name {key!r}")
        if len(key.encode("utf-8")) > KV_KEY_MAX:
            raise KVError(f"KV key too long: {len(key.encode())} bytes > {KV_KEY_MAX}")

    def _live(self, key: str) -> _KVItem | None:
        item = self.items.get(key)
        if item is None:
            return None
        if item.expires_at is not None and self.clock() >= item.expires_at:
            del self.items[key]
            return None
        return item

    async def get(self, key: str, type: str | None = None) -> Any:
        self._check_key(key)
        self._count("get")
        item = self._live(key)
        if item is None:
            return None
        return _typed(item.value, type)

    async def getWithMetadata(self, key: str, type: str | None = None) -> JsDict:
        self._check_key(key)
        self._count("get")
        item = self._live(key)
        if item is None:
            return JsDict(value=None, metadata=None)
        meta = None if item.metadata is None else _clone(item.metadata)
        return JsDict(value=_typed(item.value, type), metadata=meta)

    async def put(
        self,
        key: str,
        value: Any,
        expirationTtl: int | None = None,
        expiration: int | None = None,
        metadata: Any = None,
    ) -> None:
        self._check_key(key)
        self._count("put")
        if isinstance(value, bytes | memoryview):
            value = bytes(value).decode("utf-8", errors="replace")
        if not isinstance(value, str):
            raise KVError(
                "KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and "
                f"ReadableStreams as values; got {type(value).__name__}"
            )
        if len(value.encode("utf-8")) > KV_VALUE_MAX:
            raise KVError("KV value too large")
        now = self.clock()
        expires_at = None
        if expirationTtl is not None:
            if not isinstance(expirationTtl, int | float) or expirationTtl < KV_MIN_TTL:
                raise KVError(
                    f"Invalid expiration_ttl of {expirationTtl}. "
                    f"Expiration TTL must be at least {KV_MIN_TTL}."
                )
            expires_at = now + float(expirationTtl)
        elif expiration is not None:
            if expiration < now + KV_MIN_TTL:
                raise KVError("Invalid expiration: must be at least 60 seconds in the future")
            expires_at = float(expiration)
        if metadata is not None:
            size = len(json.dumps(metadata, separators=(",", ":")).encode("utf-8"))
            if size > KV_META_MAX:
                raise KVError(f"KV metadata too large: {size} bytes > {KV_META_MAX}")
        if self.enforce_write_rate:
            last = self.last_write.get(key)
            if last is not None and now - last < 1.0:
                raise KVError(
                    f"KV PUT failed: 429 Too Many Requests (key {key!r} written twice in 1 s)"
                )
        self.last_write[key] = now
        self.items[key] = _KVItem(value, expires_at, _clone(metadata))

    async def delete(self, key: str) -> None:
        self._check_key(key)
        self._count("delete")
        self.items.pop(key, None)

    async def list(
        self, prefix: str | None = None, limit: int = 1000, cursor: str | None = None
    ) -> JsDict:
        self._count("list")
        if not 1 <= limit <= 1000:
            raise KVError("KV list limit must be between 1 and 1000")
        names = sorted(k for k in list(self.items) if self._live(k) and k.startswith(prefix or ""))
        start = int(base64.b64decode(cursor).decode()) if cursor else 0
        page = names[start : start + limit]
        done = start + limit >= len(names)
        keys = []
        for name in page:
            item = self.items[name]
            entry: dict[str, Any] = {"name": name}
            if item.expires_at is not None:
                entry["expiration"] = int(item.expires_at)
            if item.metadata is not None:
                entry["metadata"] = _clone(item.metadata)
            keys.append(JsDict(entry))
        out = JsDict(keys=keys, list_complete=done)
        if not done:
            out["cursor"] = base64.b64encode(str(start + limit).encode()).decode()
        return out

    def dump(self) -> dict[str, str]:
        """Live keys and values (for assertions)."""
        return {k: v.value for k in sorted(self.items) if (v := self._live(k))}


def _typed(value: str, kind: str | None) -> Any:
    if kind in (None, "text"):
        return value
    if kind == "json":
        return _clone(json.loads(value))
    if kind == "arrayBuffer":
        return memoryview(value.encode("utf-8"))
    raise KVError(f"Unknown response type {kind!r}")


def _clone(value: Any) -> Any:
    if isinstance(value, dict):
        return JsDict({k: _clone(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


class R2Object:
    """An R2 object's metadata (what `head` and `list` return)."""

    def __init__(self, key: str, body: bytes, custom: dict[str, str], http: dict[str, str]) -> None:
        self.key = key
        self.size = len(body)
        self.etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
        self.customMetadata = JsDict(custom)
        self.httpMetadata = JsDict(http)


class R2ObjectBody(R2Object):
    """An R2 object with its body (what `get` returns); the body can be read once."""

    def __init__(self, key: str, body: bytes, custom: dict[str, str], http: dict[str, str]) -> None:
        super().__init__(key, body, custom, http)
        self._body = body
        self.bodyUsed = False

    def _take(self) -> bytes:
        if self.bodyUsed:
            raise R2Error("Body has already been used")
        self.bodyUsed = True
        return self._body

    async def text(self) -> str:
        return self._take().decode("utf-8", errors="replace")

    async def arrayBuffer(self) -> memoryview:
        return memoryview(self._take())

    async def json(self) -> Any:
        return _clone(json.loads(self._take()))


@dataclass
class _R2Item:
    body: bytes
    custom: dict[str, str]
    http: dict[str, str]


@dataclass
class FakeR2:
    """R2 bucket: put/get/head/delete/list, custom metadata <= 8 KiB, string metadata values.

    ``failing`` names operations (``get``, ``head``, ``put``, ``delete``, ``list``) that throw.
    """

    items: dict[str, _R2Item] = field(default_factory=dict)
    ops: dict[str, int] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)

    def _count(self, op: str) -> None:
        self.ops[op] = self.ops.get(op, 0) + 1
        if op in self.failing:
            raise R2Error(f"R2 {op} failed: 503 Service Unavailable (injected fault)")

    @staticmethod
    def _check_key(key: Any) -> None:
        if not isinstance(key, str) or key == "":
            raise R2Error("R2 key must be a non-empty string")
        if len(key.encode("utf-8")) > R2_KEY_MAX:
            raise R2Error("R2 key too long")

    async def put(
        self,
        key: str,
        value: Any,
        httpMetadata: dict[str, str] | None = None,
        customMetadata: dict[str, str] | None = None,
        **options: Any,
    ) -> R2Object:
        self._check_key(key)
        self._count("put")
        unknown = set(options) - {"onlyIf", "md5", "sha1", "sha256", "storageClass"}
        if unknown:
            raise R2Error(f"unknown R2 put options {sorted(unknown)}")
        if value is None:
            body = b""
        elif isinstance(value, str):
            body = value.encode("utf-8")
        elif isinstance(value, bytes | memoryview):
            body = bytes(value)
        else:
            raise R2Error(f"R2 put() cannot store {type(value).__name__}")
        custom = dict(customMetadata or {})
        for k, v in custom.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise R2Error("customMetadata keys and values must be strings")
        size = sum(len(k.encode()) + len(v.encode()) for k, v in custom.items())
        if size > R2_META_MAX:
            raise R2Error(f"customMetadata too large: {size} bytes > {R2_META_MAX}")
        http = dict(httpMetadata or {})
        self.items[key] = _R2Item(body, custom, http)
        return R2Object(key, body, custom, http)

    async def get(self, key: str, **options: Any) -> R2ObjectBody | None:
        self._check_key(key)
        self._count("get")
        item = self.items.get(key)
        if item is None:
            return None
        return R2ObjectBody(key, item.body, dict(item.custom), dict(item.http))

    async def head(self, key: str) -> R2Object | None:
        self._check_key(key)
        self._count("head")
        item = self.items.get(key)
        return (
            None if item is None else R2Object(key, item.body, dict(item.custom), dict(item.http))
        )

    async def delete(self, keys: str | list[str]) -> None:
        self._count("delete")
        if not isinstance(keys, str) and len(keys) > 1000:
            raise R2Error("R2 delete takes at most 1000 keys")
        for key in [keys] if isinstance(keys, str) else list(keys):
            self._check_key(key)
            self.items.pop(key, None)

    async def list(
        self,
        prefix: str | None = None,
        limit: int = 1000,
        cursor: str | None = None,
        include: list[str] | None = None,
        **options: Any,
    ) -> JsDict:
        self._count("list")
        if not 1 <= limit <= 1000:
            raise R2Error("R2 list limit must be between 1 and 1000")
        names = sorted(k for k in self.items if k.startswith(prefix or ""))
        # Like R2's, the cursor resumes after the last key listed: deleting keys already
        # listed (a sweep) does not make the next page skip any.
        after = base64.b64decode(cursor).decode() if cursor else None
        names = [k for k in names if after is None or k > after]
        page = names[:limit]
        truncated = limit < len(names)
        objects = []
        for name in page:
            item = self.items[name]
            wanted = include or []
            obj = R2Object(
                name,
                item.body,
                dict(item.custom) if "customMetadata" in wanted else {},
                dict(item.http) if "httpMetadata" in wanted else {},
            )
            objects.append(obj)
        out = JsDict(objects=objects, truncated=truncated, delimitedPrefixes=[])
        if truncated:
            out["cursor"] = base64.b64encode(page[-1].encode()).decode()
        return out

    def text(self, key: str) -> str | None:
        """An object's body as text (for assertions)."""
        item = self.items.get(key)
        return None if item is None else item.body.decode("utf-8")
