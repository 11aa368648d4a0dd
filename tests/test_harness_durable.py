"""The Durable Object fake is as strict as the runtime: input gate, SQLite, RPC, config wiring."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest
from workers import JsDict

from harness import DataCloneError, DurableObjectError, FakeSqlStorage, SqlRow, System
from harness.durable import FakeDurableObjectStorage, new_database

ROOT = Path(__file__).resolve().parents[1]

COUNTER = """
import asyncio

from workers import DurableObject, Response, WorkerEntrypoint

CONSTRUCTED = []


class Counter(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        CONSTRUCTED.append(ctx.id.name)
        self.sql = ctx.storage.sql
        self.sql.exec(
            "CREATE TABLE IF NOT EXISTS counts (name TEXT PRIMARY KEY, n INTEGER NOT NULL)"
        )

    async def add(self, n):
        rows = self.sql.exec("SELECT n FROM counts WHERE name = ?", "total").toArray()
        current = rows[0].n if rows else 0
        await asyncio.sleep(0)  # another call would interleave here without the input gate
        self.sql.exec(
            "INSERT INTO counts (name, n) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET n = excluded.n",
            "total",
            current + n,
        )
        return {"total": current + n, "object": self.ctx.id.name}

    async def wait_for(self, event_name):
        await EVENTS[event_name].wait()
        return event_name

    async def release(self, event_name):
        EVENTS[event_name].set()
        return event_name

    async def echo(self, value):
        return value

    def _private(self):
        return "no"

    async def fetch(self, request):
        return Response(f"counter {self.ctx.id.name} {request.url}")


EVENTS = {}


class NotAnObject:
    def __init__(self, ctx, env):
        pass

    async def add(self, n):
        return n


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("ok")

    async def bump(self, name, n):
        return await self.env.COUNTER.getByName(name).add(n)

    async def call(self, name, method, *args):
        return await getattr(self.env.COUNTER.getByName(name), method)(*args)

    async def call_kwargs(self, name):
        return await self.env.COUNTER.getByName(name).add(n=1)

    async def via_id(self, name, n):
        ns = self.env.COUNTER
        return await ns.get(ns.idFromName(name)).add(n)

    async def fetch_object(self, name, url):
        resp = await self.env.COUNTER.getByName(name).fetch(url)
        return await resp.text()

    async def kv_backed_sql(self):
        return await self.env.OLD.getByName("x").add(1)

    async def wrong_class(self):
        return await self.env.WRONG.getByName("x").add(1)
"""

CONFIG = """
name = "svc-do"
main = "../workers/do/entry.py"

[[durable_objects.bindings]]
name = "COUNTER"
class_name = "Counter"
{extra}
[[migrations]]
tag = "v1"
new_sqlite_classes = ["Counter"]
{migrations}
"""


def _config_dir(tmp_path: Path, *, extra: str = "", migrations: str = "") -> Path:
    (tmp_path / "workers" / "do").mkdir(parents=True)
    (tmp_path / "workers" / "do" / "entry.py").write_text(COUNTER)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "do.toml").write_text(CONFIG.format(extra=extra, migrations=migrations))
    return conf


@pytest.fixture
def system(tmp_path: Path) -> System:
    """One worker binding the SQLite-backed `Counter` class as COUNTER."""
    return System(config_dir=_config_dir(tmp_path))


# -- the input gate ---------------------------------------------------------------------------


async def test_calls_to_one_object_run_one_at_a_time(system: System) -> None:
    """Concurrent read-modify-write calls to one object never lose an update."""
    results = await asyncio.gather(*(system.rpc("do", "bump", "a", 1) for _ in range(25)))
    assert sorted(r["total"] for r in results) == list(range(1, 26))
    assert (await system.rpc("do", "bump", "a", 0))["total"] == 25


async def test_without_the_call_gate_calls_interleave_where_a_method_awaits(
    system: System,
) -> None:
    """serialize_calls=False lets calls in at awaits (as the runtime may while an object
    awaits non-storage I/O): a read-modify-write spanning an await then loses updates."""
    system.objects.serialize_calls = False
    results = await asyncio.gather(*(system.rpc("do", "bump", "a", 1) for _ in range(10)))
    assert (await system.rpc("do", "bump", "a", 0))["total"] < 10
    assert len(results) == 10


async def test_different_objects_run_concurrently(system: System) -> None:
    """A call parked in one object does not hold up calls to another object."""
    system.module("do").EVENTS["go"] = asyncio.Event()
    waiting = asyncio.ensure_future(system.rpc("do", "call", "a", "wait_for", "go"))
    await asyncio.sleep(0)
    assert await system.rpc("do", "call", "b", "release", "go") == "go"
    assert await asyncio.wait_for(waiting, 1.0) == "go"


async def test_each_name_is_its_own_object_and_get_by_id_is_the_same(system: System) -> None:
    """getByName and get(idFromName) reach one object per name, each with its own database."""
    await system.rpc("do", "bump", "a", 2)
    await system.rpc("do", "via_id", "a", 3)
    other = await system.rpc("do", "bump", "b", 1)
    assert (await system.rpc("do", "bump", "a", 0))["total"] == 5
    assert other == {"total": 1, "object": "b"}
    assert sorted(n for n in system.objects.names("svc-do:Counter") if n) == ["a", "b"]


# -- storage outlives instances; isolates share objects ----------------------------------------


async def test_storage_outlives_an_evicted_instance(system: System) -> None:
    """After eviction the class is constructed again over the same database."""
    await system.rpc("do", "bump", "a", 4)
    system.objects.evict()
    assert (await system.rpc("do", "bump", "a", 1))["total"] == 5
    assert system.module("do").CONSTRUCTED == ["a", "a"]
    rows = system.objects.query("svc-do:Counter", "a", "SELECT n FROM counts")
    assert rows == [{"n": 5}]


async def test_sibling_isolates_reach_the_same_object(system: System) -> None:
    """Two sets of isolates of one deployment share each named object."""
    other = system.sibling()
    await asyncio.gather(
        *(s.rpc("do", "bump", "a", 1) for s in [system, other] * 5),
    )
    assert (await other.rpc("do", "bump", "a", 0))["total"] == 10
    assert other.module("do") is not system.module("do")


# -- RPC and fetch on stubs ------------------------------------------------------------------


async def test_stub_rpc_follows_structured_clone_and_positional_args(system: System) -> None:
    """Results come back as a dict subclass copy; kwargs, tuples and objects raise."""
    got = await system.rpc("do", "call", "a", "echo", {"x": [1, {"y": None}]})
    assert isinstance(got, JsDict)
    assert got == {"x": [1, {"y": None}]}
    with pytest.raises(TypeError, match="keyword arguments"):
        await system.rpc("do", "call_kwargs", "a")
    module = system.module("do")
    stub = system.envs["do"].COUNTER.getByName("a")
    with pytest.raises(TypeError, match="cannot be sent over RPC"):
        await stub.echo((1, 2))
    with pytest.raises(DataCloneError):
        await stub.echo(module.Counter)


@pytest.mark.parametrize("method", ["nope", "alarm", "webSocketMessage"])
async def test_stub_refuses_unknown_and_handler_methods(system: System, method: str) -> None:
    """Only the class's public methods are RPC; handlers are not."""
    stub = system.envs["do"].COUNTER.getByName("a")
    with pytest.raises(TypeError, match="does not implement"):
        await getattr(stub, method)()


def test_stub_has_no_private_methods(system: System) -> None:
    """A name starting with an underscore is not reachable through a stub."""
    stub = system.envs["do"].COUNTER.getByName("a")
    with pytest.raises(AttributeError):
        _ = stub._private


async def test_stub_fetch_needs_an_absolute_url(system: System) -> None:
    """stub.fetch reaches the object's fetch handler; a relative URL fails as in the runtime."""
    assert await system.rpc("do", "fetch_object", "a", "https://do/x") == "counter a https://do/x"
    with pytest.raises(TypeError, match="Fetch API cannot load"):
        await system.rpc("do", "fetch_object", "a", "/x")


async def test_calls_and_traffic_are_recorded(system: System) -> None:
    """Each handled call is listed (for cost assertions) and logged as traffic."""
    await system.rpc("do", "bump", "a", 1)
    assert [(c.name, c.method) for c in system.objects.calls] == [("a", "add")]
    assert any(t.kind == "do-rpc" and t.target == "Counter:a.add" for t in system.traffic)


# -- config wiring -----------------------------------------------------------------------------


def test_a_class_without_migration_is_refused(tmp_path: Path) -> None:
    """A binding to a class no migration declares fails at wiring, as a deploy would."""
    extra = '[[durable_objects.bindings]]\nname = "OTHER"\nclass_name = "Missing"\n'
    with pytest.raises(LookupError, match="has no migration"):
        System(config_dir=_config_dir(tmp_path, extra=extra))


async def test_a_kv_backed_class_has_no_sql(tmp_path: Path) -> None:
    """A class migrated with new_classes (KV storage) cannot use ctx.storage.sql."""
    conf = _config_dir(tmp_path)
    config = conf / "do.toml"
    config.write_text(config.read_text().replace("new_sqlite_classes", "new_classes"))
    system = System(config_dir=conf)
    with pytest.raises(DurableObjectError, match="SQL is not enabled"):
        await system.rpc("do", "bump", "a", 1)


async def test_the_class_must_extend_durable_object(tmp_path: Path) -> None:
    """A bound class that does not extend workers.DurableObject fails on first use."""
    extra = '[[durable_objects.bindings]]\nname = "WRONG"\nclass_name = "NotAnObject"\n'
    migrations = '[[migrations]]\ntag = "v2"\nnew_sqlite_classes = ["NotAnObject"]\n'
    system = System(config_dir=_config_dir(tmp_path, extra=extra, migrations=migrations))
    with pytest.raises(TypeError, match=r"extending workers\.DurableObject"):
        await system.rpc("do", "wrong_class")


def test_deleted_and_renamed_classes_follow_the_migrations(tmp_path: Path) -> None:
    """A later migration that deletes the class leaves the binding without a class."""
    migrations = '[[migrations]]\ntag = "v2"\ndeleted_classes = ["Counter"]\n'
    with pytest.raises(LookupError, match="has no migration"):
        System(config_dir=_config_dir(tmp_path, migrations=migrations))


# -- SQL semantics ---------------------------------------------------------------------------


@pytest.fixture
def sql() -> FakeSqlStorage:
    """The SQL API of a fresh SQLite-backed object."""
    storage = FakeSqlStorage(new_database())
    storage.exec("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER, x REAL, b BLOB)")
    return storage


def test_rows_are_read_by_attribute_only(sql: FakeSqlStorage) -> None:
    """toArray gives rows with attribute access (no item access), in column order."""
    sql.exec("INSERT INTO t VALUES (?, ?, ?, ?)", "a", 1, 1.5, b"\x00\x01")
    cursor = sql.exec("SELECT k, n, x, b FROM t")
    assert cursor.columnNames == ["k", "n", "x", "b"]
    (row,) = cursor.toArray()
    assert isinstance(row, SqlRow)
    assert (row.k, row.n, row.x) == ("a", 1, 1.5)
    assert isinstance(row.b, memoryview)
    assert bytes(row.b) == b"\x00\x01"
    with pytest.raises(TypeError):
        _ = row["k"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        _ = row.missing
    assert cursor.toArray() == []  # a cursor is read once


def test_one_needs_exactly_one_row(sql: FakeSqlStorage) -> None:
    """one() raises on zero or several rows, like the runtime."""
    with pytest.raises(DurableObjectError, match="got no results"):
        sql.exec("SELECT k FROM t").one()
    sql.exec("INSERT INTO t (k, n) VALUES ('a', 1), ('b', 2)")
    with pytest.raises(DurableObjectError, match="multiple results"):
        sql.exec("SELECT k FROM t").one()
    assert sql.exec("SELECT count(*) AS c FROM t").one().c == 2


def test_raw_next_and_row_counts(sql: FakeSqlStorage) -> None:
    """raw() yields value lists; next() follows the JS iterator protocol; writes are counted."""
    written = sql.exec("INSERT INTO t (k, n) VALUES ('a', 1), ('b', 2)")
    assert written.rowsWritten == 2
    assert list(sql.exec("SELECT k, n FROM t ORDER BY k").raw()) == [["a", 1], ["b", 2]]
    cursor = sql.exec("SELECT k FROM t ORDER BY k")
    first = cursor.next()
    assert (first["done"], first["value"].k) == (False, "a")
    assert cursor.next()["value"].k == "b"
    assert cursor.next()["done"] is True
    assert cursor.rowsRead == 2


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (True, "boolean"),
        (2**53, "MAX_SAFE_INTEGER"),
        ({"a": 1}, "not a SQL value"),
        ([1], "not a SQL value"),
    ],
    ids=["bool", "big-int", "dict", "list"],
)
def test_parameters_bind_only_sql_values(sql: FakeSqlStorage, value: object, match: str) -> None:
    """Only null, numbers (safe integers), strings and bytes bind."""
    with pytest.raises(TypeError, match=match):
        sql.exec("SELECT ?", value)


def test_at_most_100_parameters(sql: FakeSqlStorage) -> None:
    """A statement takes at most 100 bound parameters."""
    sql.exec("SELECT " + ", ".join("?" * 100), *range(100))
    with pytest.raises(DurableObjectError, match="too many SQL variables"):
        sql.exec("SELECT " + ", ".join("?" * 101), *range(101))


def test_integers_past_the_js_range_cannot_be_read(sql: FakeSqlStorage) -> None:
    """A stored integer a JS number cannot hold fails on read."""
    sql.exec("INSERT INTO t (k, n) VALUES ('big', 9007199254740993)")
    with pytest.raises(DurableObjectError, match="JS number"):
        sql.exec("SELECT n FROM t").toArray()


@pytest.mark.parametrize(
    "statement", ["BEGIN", "begin transaction", "COMMIT", "SAVEPOINT s", "ROLLBACK", "END"]
)
def test_transaction_statements_are_refused(sql: FakeSqlStorage, statement: str) -> None:
    """Transactions go through transactionSync, never SQL."""
    with pytest.raises(DurableObjectError, match="transactionSync"):
        sql.exec(statement)


def test_transaction_sync_rolls_back_on_error() -> None:
    """transactionSync commits together, or not at all when the callback raises."""
    storage = FakeDurableObjectStorage(new_database(), sqlite=True)
    storage.sql.exec("CREATE TABLE t (k TEXT PRIMARY KEY)")

    def fails() -> None:
        storage.sql.exec("INSERT INTO t VALUES ('a')")
        raise ValueError("midway")

    with pytest.raises(ValueError, match="midway"):
        storage.transactionSync(fails)
    assert storage.sql.exec("SELECT count(*) AS c FROM t").one().c == 0
    assert (
        storage.transactionSync(lambda: storage.sql.exec("INSERT INTO t VALUES ('b')")) is not None
    )
    assert storage.sql.exec("SELECT count(*) AS c FROM t").one().c == 1


def test_reserved_names_and_errors(sql: FakeSqlStorage) -> None:
    """_cf_ names are reserved; SQL errors are the runtime's errors; a query must be text."""
    with pytest.raises(DurableObjectError):
        sql.exec("CREATE TABLE _cf_mine (k TEXT)")
    with pytest.raises(DurableObjectError, match="no such table"):
        sql.exec("SELECT * FROM nope")
    with pytest.raises(TypeError):
        sql.exec(b"SELECT 1")  # type: ignore[arg-type]


def test_several_statements_run_in_order(sql: FakeSqlStorage) -> None:
    """A script runs every statement (semicolons in literals kept); it takes no parameters."""
    cursor = sql.exec("INSERT INTO t (k) VALUES ('a;b'); SELECT k FROM t;")
    assert [r.k for r in cursor.toArray()] == ["a;b"]
    with pytest.raises(DurableObjectError, match="single statement"):
        sql.exec("SELECT 1; SELECT ?", 1)


# -- the stand-in SDK module -------------------------------------------------------------------


def test_stand_in_sdk_exports_what_the_real_sdk_exports() -> None:
    """Every name the stand-in `workers` module exports is exported by the real SDK too."""
    import workers as stand_in

    real = next(ROOT.glob(".venv/lib/python3*/site-packages/workers/__init__.py"), None)
    if real is None:
        pytest.skip("the workers-runtime-sdk package is not installed in .venv")
    tree = ast.parse(real.read_text())
    exported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            exported = {ast.literal_eval(e) for e in node.value.elts}  # type: ignore[attr-defined]
    assert {"DurableObject", "WorkerEntrypoint", "Response"} <= exported
    # JsDict lives in workers.rpc; CHUNK_BYTES and ReadableStream model the JS body stream
    # (a JS global in the runtime, not an SDK name).
    harness_only = {"JsDict", "CHUNK_BYTES", "ReadableStream"}
    assert set(stand_in.__all__) - harness_only <= exported
