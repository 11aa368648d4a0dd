"""Strict fakes of Durable Objects: namespaces, stubs, the input gate and SQLite storage.

As in the runtime:

* an object is addressed by name (``getByName``, or ``idFromName`` then ``get``); each name
  is one object with its own SQLite database (CPython's sqlite3, in memory), which outlives
  the object's instance (``DurableObjects.evict`` drops instances, as a deploy or an idle
  eviction does, and the next call constructs the class again over the same database);
* one object handles one call at a time (its input gate): calls to the same object are
  serialized, calls to different objects run concurrently;
* RPC on a stub takes positional arguments only, cloned by the structured-clone rules both
  ways (`rpc_clone`); private, unknown and handler methods (``fetch`` goes through
  ``stub.fetch``) raise; the class must subclass ``workers.DurableObject``;
* ``ctx.storage.sql.exec(sql, *params)`` runs at once and returns a cursor (``toArray()``,
  ``one()``, ``raw()``, iteration, ``next()``, ``columnNames``, ``rowsRead``,
  ``rowsWritten``) whose rows are read by attribute; parameters bind only as null, number,
  string or bytes (no booleans, no integers past 2**53), at most 100 of them; transaction
  statements are refused (``ctx.storage.transactionSync(fn)`` is the way); ``_cf_`` names
  are reserved; a class migrated with ``new_classes`` (KV-backed) has no ``sql``.

Where the fake is stricter than the runtime: several statements in one ``exec`` must not
take parameters, and their cursor is the last statement's. The input gate: by default a call
holds its object until it returns. The runtime's gate only stops other calls while storage
works; an object awaiting anything else (a fetch, a timer) may receive the next call. SQL is
synchronous, so with ``DurableObjects.serialize_calls = False`` calls interleave exactly
where the runtime lets them (wherever a method awaits): use it to check that an object's
read-decide-write never spans an await.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from workers import DurableObject, FetchResponse, JsDict, Response

from .bindings import FakeContext, Traffic, binding_request, rpc_args, rpc_clone

SQL_MAX_PARAMS = 100
JS_MAX_SAFE_INTEGER = 2**53 - 1
_TRANSACTION = re.compile(r"^\s*(BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE)\b", re.IGNORECASE)
_TRANSACTION_MESSAGE = (
    "To execute a transaction, please use the state.storage.transaction() or "
    "state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT "
    "statements. The JavaScript API is safer because it will automatically roll back on "
    "exceptions, and because it interacts correctly with Durable Objects' automatic atomic "
    "write coalescing."
)
_HANDLERS = frozenset({"fetch", "alarm", "webSocketMessage", "webSocketClose", "webSocketError"})


class DurableObjectError(Exception):
    """What the runtime throws for a rejected storage or stub operation (a JS Error)."""


# -- SQLite storage ------------------------------------------------------------------------


class SqlRow:
    """A result row: columns read as attributes only (as a JsProxy of a JS object)."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any]) -> None:
        object.__setattr__(self, "_values", values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("SQL result rows are read-only")

    def __repr__(self) -> str:
        return f"SqlRow({self._values!r})"


def _bind(value: Any, index: int) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise TypeError(f"SQL parameter {index}: a boolean is not a SQL value (use 0/1)")
    if isinstance(value, int):
        if abs(value) > JS_MAX_SAFE_INTEGER:
            raise TypeError(f"SQL parameter {index}: {value} is past Number.MAX_SAFE_INTEGER")
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, bytes | memoryview):
        return bytes(value)
    raise TypeError(f"SQL parameter {index}: {type(value).__name__} is not a SQL value")


def _read(value: Any) -> Any:
    if isinstance(value, int) and abs(value) > JS_MAX_SAFE_INTEGER:
        raise DurableObjectError(f"SQL integer {value} cannot be represented as a JS number")
    if isinstance(value, bytes):
        return memoryview(value)  # an ArrayBuffer on the Python side
    return value


def _statements(query: str) -> list[str]:
    """``query`` split into complete statements (semicolons inside literals kept)."""
    out: list[str] = []
    buffer = ""
    for part in query.split(";"):
        buffer += part + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \t\r\n;"):
                out.append(buffer)
            buffer = ""
    if buffer.strip(" \t\r\n;"):
        out.append(buffer[:-1])  # the last statement needs no semicolon
    return out


def _authorize(action: int, arg1: str | None, arg2: str | None, *_: Any) -> int:
    for name in (arg1, arg2):
        if name and name.lower().startswith("_cf_"):
            return sqlite3.SQLITE_DENY  # reserved for the runtime's own tables
    return sqlite3.SQLITE_OK


def new_database() -> sqlite3.Connection:
    """An empty object database: in memory, each statement committed, ``_cf_`` reserved."""
    conn = sqlite3.connect(":memory:")
    conn.isolation_level = None
    conn.set_authorizer(_authorize)
    return conn


class FakeSqlCursor:
    """``SqlStorageCursor``: the statement already ran; rows are fetched as read."""

    def __init__(self, cursor: sqlite3.Cursor, rows_written: int) -> None:
        self._cursor = cursor
        self.columnNames = [d[0] for d in cursor.description or ()]
        self.rowsRead = 0
        self.rowsWritten = rows_written

    def _fetch(self) -> list[Any] | None:
        if not self.columnNames:
            return None
        row = self._cursor.fetchone()
        if row is None:
            return None
        self.rowsRead += 1
        return [_read(v) for v in row]

    def __iter__(self) -> Iterator[SqlRow]:
        while (values := self._fetch()) is not None:
            yield SqlRow(dict(zip(self.columnNames, values, strict=True)))

    def next(self) -> JsDict:
        """The JS iterator protocol: ``{done, value}``."""
        values = self._fetch()
        if values is None:
            return JsDict(done=True, value=None)
        return JsDict(done=False, value=SqlRow(dict(zip(self.columnNames, values, strict=True))))

    def toArray(self) -> list[SqlRow]:
        """The rows not read yet."""
        return list(self)

    def one(self) -> SqlRow:
        """The only row; anything but exactly one raises."""
        rows = self.toArray()
        if not rows:
            raise DurableObjectError(
                "Expected exactly one result from SQL query, but got no results."
            )
        if len(rows) > 1:
            raise DurableObjectError(
                "Expected exactly one result from SQL query, but got multiple results."
            )
        return rows[0]

    def raw(self) -> Iterator[list[Any]]:
        """Rows as lists of values, in column order."""
        while (values := self._fetch()) is not None:
            yield values


class FakeSqlStorage:
    """``ctx.storage.sql`` of a SQLite-backed object."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def exec(self, query: Any, *bindings: Any) -> FakeSqlCursor:
        if not isinstance(query, str):
            raise TypeError("exec(): the query must be a string")
        if len(bindings) > SQL_MAX_PARAMS:
            raise DurableObjectError(
                f"too many SQL variables: {len(bindings)} > {SQL_MAX_PARAMS} bound parameters"
            )
        params = [_bind(v, i) for i, v in enumerate(bindings, 1)]
        statements = _statements(query)
        if not statements:
            raise DurableObjectError("exec(): the query has no statement")
        if any(_TRANSACTION.match(s) for s in statements):
            raise DurableObjectError(_TRANSACTION_MESSAGE)
        if len(statements) > 1 and params:
            raise DurableObjectError("exec(): parameters need a single statement (fake's rule)")
        before = self._conn.total_changes
        try:
            for statement in statements[:-1]:
                self._conn.execute(statement)
            cursor = self._conn.execute(statements[-1], params)
        except sqlite3.Error as exc:
            raise DurableObjectError(f"{exc}: SQLITE_ERROR") from exc
        return FakeSqlCursor(cursor, self._conn.total_changes - before)

    @property
    def databaseSize(self) -> int:
        pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
        size = self._conn.execute("PRAGMA page_size").fetchone()[0]
        return int(pages) * int(size)


class FakeDurableObjectStorage:
    """``ctx.storage``: ``sql`` (SQLite-backed classes only) and ``transactionSync``."""

    def __init__(self, conn: sqlite3.Connection, *, sqlite: bool) -> None:
        self._conn = conn
        self._sqlite = sqlite
        self._sql = FakeSqlStorage(conn)

    @property
    def sql(self) -> FakeSqlStorage:
        if not self._sqlite:
            raise DurableObjectError(
                "SQL is not enabled for this Durable Object class: declare it in a migration's "
                "new_sqlite_classes"
            )
        return self._sql

    def transactionSync(self, callback: Callable[[], Any]) -> Any:
        """Run ``callback`` atomically: an exception rolls every write back."""
        self._conn.execute("SAVEPOINT _fake_txn")
        try:
            result = callback()
            if inspect.isawaitable(result):
                raise DurableObjectError("transactionSync() callbacks must be synchronous")
        except BaseException:
            self._conn.execute("ROLLBACK TO _fake_txn")
            self._conn.execute("RELEASE _fake_txn")
            raise
        self._conn.execute("RELEASE _fake_txn")
        return result


# -- objects, ids, stubs --------------------------------------------------------------------


@dataclass(frozen=True)
class FakeDurableObjectId:
    """``DurableObjectId``: ``name`` when made from one, a 64-hex ``toString()``."""

    namespace: str
    hex: str
    name: str | None = None

    def toString(self) -> str:
        return self.hex

    def equals(self, other: Any) -> bool:
        return isinstance(other, FakeDurableObjectId) and other.hex == self.hex


class FakeDurableObjectState:
    """``ctx`` of an object: ``id``, ``storage``, ``waitUntil``, ``blockConcurrencyWhile``."""

    def __init__(self, object_id: FakeDurableObjectId, storage: FakeDurableObjectStorage) -> None:
        self.id = object_id
        self.storage = storage
        self._context = FakeContext()
        self._blocking: list[asyncio.Task[Any]] = []

    def waitUntil(self, work: Any) -> None:
        self._context.waitUntil(work)

    def blockConcurrencyWhile(self, callback: Callable[[], Any]) -> asyncio.Future[Any]:
        """Hold every call until ``callback()`` (a coroutine function) has finished."""
        task = asyncio.ensure_future(callback())
        self._blocking.append(task)
        return task

    async def _settle(self) -> None:
        while self._blocking:
            await self._blocking.pop(0)

    async def _drain(self) -> None:
        await self._context.drain()
        if self._context.errors:
            raise self._context.errors.pop(0)


@dataclass
class _Slot:
    """One object: its database for good, its instance while it lives, its input gate."""

    id: FakeDurableObjectId
    sqlite: bool
    conn: sqlite3.Connection = field(default_factory=new_database)
    instance: Any = None
    state: FakeDurableObjectState | None = None
    gate: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True)
class ObjectCall:
    """One call an object handled (for assertions)."""

    namespace: str
    name: str | None
    method: str


class DurableObjects:
    """Every Durable Object of one account: databases, live instances and the calls made."""

    def __init__(self) -> None:
        self._slots: dict[tuple[str, str], _Slot] = {}
        self.calls: list[ObjectCall] = []
        self.serialize_calls = True  # False: interleave at awaits, as the runtime's gate allows

    def slot(self, object_id: FakeDurableObjectId, *, sqlite: bool) -> _Slot:
        key = (object_id.namespace, object_id.hex)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(object_id, sqlite)
        return slot

    def evict(self) -> None:
        """Drop every live instance (storage stays), as a deploy or an idle eviction does."""
        for slot in self._slots.values():
            slot.instance = None
            slot.state = None

    def names(self, namespace: str) -> list[str | None]:
        """Names of the objects created in ``namespace``."""
        return [s.id.name for (ns, _), s in self._slots.items() if ns == namespace]

    def query(self, namespace: str, name: str, sql: str, *params: Any) -> list[dict[str, Any]]:
        """Rows of ``sql`` run against one object's database (for assertions)."""
        for (ns, _), slot in self._slots.items():
            if ns == namespace and slot.id.name == name:
                cursor = slot.conn.execute(sql, params)
                columns = [d[0] for d in cursor.description or ()]
                return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        raise LookupError(f"no object {name!r} in {namespace}")


class FakeDurableObjectNamespace:
    """A ``[[durable_objects.bindings]]`` binding: ``idFromName``, ``get``, ``getByName``."""

    def __init__(
        self,
        *,
        namespace: str,
        class_name: str,
        sqlite: bool,
        load_class: Callable[[], Any],
        env: Callable[[], Any],
        objects: DurableObjects,
        caller: str,
        binding: str,
        traffic: list[Traffic],
    ) -> None:
        self.namespace = namespace
        self.class_name = class_name
        self.sqlite = sqlite
        self._load_class = load_class
        self._env = env
        self._objects = objects
        self._caller = caller
        self._binding = binding
        self._traffic = traffic

    def idFromName(self, name: Any) -> FakeDurableObjectId:
        if not isinstance(name, str):
            raise TypeError("idFromName(): the name must be a string")
        digest = hashlib.sha256(f"{self.namespace}\x00{name}".encode()).hexdigest()
        return FakeDurableObjectId(self.namespace, digest, name)

    def newUniqueId(self) -> FakeDurableObjectId:
        return FakeDurableObjectId(self.namespace, secrets.token_hex(32))

    def get(self, object_id: Any) -> FakeDurableObjectStub:
        if not isinstance(object_id, FakeDurableObjectId) or object_id.namespace != self.namespace:
            raise TypeError("get(): the id was not made by this namespace")
        return FakeDurableObjectStub(self, object_id)

    def getByName(self, name: Any) -> FakeDurableObjectStub:
        return self.get(self.idFromName(name))

    def _construct(self, slot: _Slot) -> Any:
        cls = self._load_class()
        if not (isinstance(cls, type) and issubclass(cls, DurableObject)):
            raise TypeError(f"{self.class_name} must be a class extending workers.DurableObject")
        state = FakeDurableObjectState(
            slot.id, FakeDurableObjectStorage(slot.conn, sqlite=slot.sqlite)
        )
        slot.instance, slot.state = cls(state, self._env()), state
        return slot.instance

    async def _dispatch(
        self, object_id: FakeDurableObjectId, method: str, call: Callable[[Any], Any]
    ) -> Any:
        slot = self._objects.slot(object_id, sqlite=self.sqlite)
        if not self._objects.serialize_calls:
            return await self._handle(slot, object_id, method, call)
        async with slot.gate:  # the input gate: one call at a time per object
            return await self._handle(slot, object_id, method, call)

    async def _handle(
        self, slot: _Slot, object_id: FakeDurableObjectId, method: str, call: Callable[[Any], Any]
    ) -> Any:
        instance = slot.instance if slot.instance is not None else self._construct(slot)
        assert slot.state is not None
        await slot.state._settle()
        self._objects.calls.append(ObjectCall(self.namespace, object_id.name, method))
        result = call(instance)
        if inspect.isawaitable(result):
            result = await result
        await slot.state._drain()
        return result


class FakeDurableObjectStub:
    """A stub: ``await stub.method(*args)`` (RPC) or ``await stub.fetch(url, **options)``."""

    def __init__(self, namespace: FakeDurableObjectNamespace, object_id: FakeDurableObjectId):
        self._namespace = namespace
        self.id = object_id
        self.name = object_id.name

    def _log(self, kind: str, target: str, headers: dict[str, str], payload: str) -> None:
        ns = self._namespace
        self._namespace._traffic.append(
            Traffic(ns._caller, ns._binding, kind, f"{ns.class_name}:{target}", headers, payload)
        )

    async def fetch(self, resource: Any, **options: Any) -> FetchResponse:
        url, request = binding_request(resource, options)
        self._log("do-fetch", url, dict(request.headers), request._body.decode("utf-8", "replace"))

        def call(instance: Any) -> Any:
            handler = getattr(type(instance), "fetch", None)
            if handler is None:
                raise DurableObjectError(f"{self._namespace.class_name} has no fetch handler")
            return instance.fetch(request)

        response = await self._namespace._dispatch(self.id, "fetch", call)
        if not isinstance(response, Response):
            raise TypeError(f"{self._namespace.class_name}.fetch did not return a Response")
        return FetchResponse(response._body, response.status, response.headers, url)

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)

        async def rpc(*args: Any, **kwargs: Any) -> Any:
            cloned = rpc_args(method, args, kwargs)
            self._log("do-rpc", f"{self.name}.{method}", {}, repr(args))

            def call(instance: Any) -> Any:
                fn = getattr(type(instance), method, None)
                if fn is None or method in _HANDLERS or not callable(fn):
                    raise TypeError(f"The RPC receiver does not implement the method {method!r}.")
                return getattr(instance, method)(*cloned)

            result = await self._namespace._dispatch(self.id, method, call)
            return rpc_clone(result, path=f"{method} result")

        return rpc
