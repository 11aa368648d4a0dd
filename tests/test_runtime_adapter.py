"""The runtime adapter over the strict fakes: the one place JS-shaped values are converted."""

from __future__ import annotations

from typing import Any

import pytest
from workers import CHUNK_BYTES, JsDict
from workers import Request as RuntimeRequest

from bookmeta import FakeClock, PayloadTooLarge, Request
from bookmeta.runtime import (
    KVBinding,
    R2Binding,
    RuntimeEnv,
    SqlBinding,
    read_request,
    to_python,
    to_runtime_response,
)
from harness import FakeContext, FakeKV, FakeR2, FakeSecret, FakeSqlStorage
from harness.durable import new_database
from harness.system import FakeEnv


async def test_request_round_trip() -> None:
    """A runtime request becomes a Request with lower-case headers, its body left unread."""
    raw = RuntimeRequest(
        "https://w.test/a?b=1", method="POST", headers={"X-Thing": "v"}, body="hello"
    )
    got = await read_request(raw)
    assert got == Request("POST", "https://w.test/a?b=1", {"x-thing": "v"})
    assert (raw.bytes_read, raw.body_used) == (0, False)
    assert await got.read_body(5) == b"hello"
    assert raw.bytes_read == 5


async def test_a_streamed_body_is_cut_one_chunk_past_the_limit() -> None:
    """Past the limit the stream is cancelled: at most one chunk beyond it was read."""
    raw = RuntimeRequest("https://w.test/a", method="POST", body=b"x" * (10 * CHUNK_BYTES))
    got = await read_request(raw)
    with pytest.raises(PayloadTooLarge):
        await got.read_body(2 * CHUNK_BYTES + 1)
    assert raw.bytes_read == 3 * CHUNK_BYTES


async def test_a_request_without_a_body_reads_as_empty() -> None:
    """A POST with no body (JS null) reads as b''; a GET has no stream at all."""
    assert (
        await (await read_request(RuntimeRequest("https://w.test/", method="POST"))).read_body(1)
        == b""
    )
    assert (await read_request(RuntimeRequest("https://w.test/"))).stream is None


async def test_the_stub_body_is_read_once_either_way() -> None:
    """As in the runtime: a streamed body cannot be read whole afterwards, nor locked twice."""
    raw = RuntimeRequest("https://w.test/a", method="POST", body="hello")
    stream = raw.body
    assert stream is raw.body
    assert stream is not None
    reader = stream.getReader()
    with pytest.raises(TypeError):
        stream.getReader()
    assert (await reader.read()).value.to_bytes() == b"hello"
    with pytest.raises(TypeError):
        await raw.bytes()


def test_null_body_statuses_send_no_body() -> None:
    """204 responses are built without a body (the runtime refuses one)."""
    from bookmeta import Response

    resp = to_runtime_response(Response(204, b"", {"x": "y"}))
    assert resp.status == 204


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ('{"q":"Solaris, Stanisław Lem"}'.encode(), {"content-type": "application/json"}),
        (b"\xff\xfe binary", {"Content-Type": "application/octet-stream"}),
        (b"no type", {"x-a": "1"}),
        (b"", {"content-type": "text/csv"}),
    ],
    ids=["utf8-json", "not-utf8", "no-content-type", "empty"],
)
async def test_response_keeps_body_and_headers(body: bytes, headers: dict[str, str]) -> None:
    """Text or bytes across the boundary, the runtime sees the same body and headers (a body
    without a content-type never gets one added)."""
    from bookmeta import Response

    resp = to_runtime_response(Response(200, body, dict(headers)))
    assert await resp.bytes() == body
    assert dict(resp.headers) == {k.lower(): v for k, v in headers.items()}


async def test_secret_from_store_or_plain_string() -> None:
    """Secrets come from a Secrets Store binding or a plain string; missing ones are None."""
    env = RuntimeEnv(
        FakeEnv({"A": FakeSecret("store-value"), "B": "plain", "C": FakeSecret(None)}),
        FakeContext(),
    )
    assert await env.secret("A") == "store-value"
    assert await env.secret("B") == "plain"
    assert await env.secret("C") is None
    assert await env.secret("D") is None


async def test_kv_binding_converts_options_and_listing() -> None:
    """put() sends expirationTtl/metadata; list() pages until complete."""
    kv = KVBinding(FakeKV(clock=FakeClock(0.0)))
    for i in range(3):
        await kv.put(f"k{i}", "v", ttl_s=60, metadata={"i": i})
    entry = await kv.get_with_metadata("k1")
    assert entry.value == "v"
    assert entry.metadata == {"i": 1}
    assert type(entry.metadata) is dict
    page = await kv.list("k", limit=2)
    assert page.keys == ["k0", "k1"]
    rest = await kv.list("k", cursor=page.cursor)
    assert rest.keys == ["k2"]
    assert rest.cursor is None


async def test_r2_binding_reads_body_and_metadata() -> None:
    """get() returns body and custom metadata; head() returns metadata only."""
    r2 = R2Binding(FakeR2())
    await r2.put("x", "body", custom_metadata={"a": "b"}, content_type="text/csv")
    blob = await r2.get("x")
    assert blob is not None
    assert blob.text() == "body"
    assert blob.custom_metadata == {"a": "b"}
    assert blob.content_type == "text/csv"
    assert await r2.head("x") == {"a": "b"}
    assert await r2.get("nope") is None


def test_to_python_unwraps_rpc_values() -> None:
    """Dict subclasses become dicts, memoryview bytes, recursively."""
    got = to_python(JsDict(a=[JsDict(b=memoryview(b"x"))]))
    assert got == {"a": [{"b": b"x"}]}
    assert type(got) is dict
    assert type(got["a"][0]) is dict


def test_sql_binding_turns_attribute_rows_into_dicts() -> None:
    """Rows read by attribute (or as a dict subclass) become plain dicts; BLOBs bytes."""
    sql = SqlBinding(FakeSqlStorage(new_database()))
    sql.execute("CREATE TABLE t (k TEXT PRIMARY KEY, items INTEGER, b BLOB)")
    assert sql.execute("INSERT INTO t VALUES (?, ?, ?)", "a", 3, b"\x01") == []
    rows = sql.execute("SELECT k, items, b FROM t")
    assert rows == [{"k": "a", "items": 3, "b": b"\x01"}]
    assert type(rows[0]) is dict

    class DictRows:  # newer SDKs hand rows over as dict subclasses
        columnNames = ["items"]  # noqa: RUF012 - a JS array on the runtime side

        def toArray(self) -> list[JsDict]:
            return [JsDict(items=7)]

    class DictCursorSql:
        def exec(self, sql: str, *params: object) -> DictRows:
            return DictRows()

    # "items" is also a dict method: a dict row must be read by key, not attribute.
    assert SqlBinding(DictCursorSql()).execute("SELECT 7 AS items") == [{"items": 7}]


def test_env_gives_durable_object_namespaces_by_binding_name() -> None:
    """durable_object(name) wraps the binding; an absent binding is None."""
    env = RuntimeEnv(FakeEnv({}), FakeContext())
    assert env.durable_object("GUARD") is None


async def test_r2_lists_custom_metadata_on_request_and_deletes_many_in_one_call() -> None:
    """list(include_metadata=True) carries each object's custom metadata; delete_many is one
    R2 delete of a key array (at most 1,000 keys)."""
    raw = FakeR2()
    r2 = R2Binding(raw)
    for n in range(3):
        await r2.put(f"cache/{n}", "{}", custom_metadata={"expires_at": str(n)})
    plain = await r2.list("cache/")
    assert (plain.keys, plain.metadata) == (["cache/0", "cache/1", "cache/2"], {})
    page = await r2.list("cache/", limit=2, include_metadata=True)
    assert page.metadata == {"cache/0": {"expires_at": "0"}, "cache/1": {"expires_at": "1"}}
    assert page.cursor is not None
    raw.ops.clear()
    await r2.delete_many(["cache/0", "cache/1"])
    await r2.delete_many([])
    assert raw.ops == {"delete": 1}
    assert list(raw.items) == ["cache/2"]


def test_absent_modules_fail_fast_and_present_ones_stay() -> None:
    """mark_absent blocks only modules that cannot be found; their import then fails at once."""
    import sys

    from bookmeta.runtime import mark_absent

    missing = "bookmeta_no_such_module_for_this_test"
    try:
        assert mark_absent([missing, "json"]) == [missing]
        assert sys.modules[missing] is None
        with pytest.raises(ImportError):
            __import__(missing)
        assert sys.modules["json"] is not None
    finally:
        sys.modules.pop(missing, None)


def test_env_memo_looks_each_binding_and_var_up_once_per_isolate() -> None:
    """With an EnvMemo, later requests' RuntimeEnvs reuse the first look-up (absent ones too)."""
    from bookmeta.runtime import EnvMemo

    looked_up: list[str] = []

    class CountingEnv(FakeEnv):
        def __getattribute__(self, name: str) -> Any:
            if name.isupper():
                looked_up.append(name)
            return super().__getattribute__(name)

    kv = FakeKV(clock=FakeClock(0.0))
    memo = EnvMemo()
    for _ in range(3):  # three requests, each with a new env wrapper from the runtime
        env = RuntimeEnv(CountingEnv({"CACHE": kv, "TTL": "60"}), FakeContext(), memo=memo)
        assert env.var("TTL", "1") == "60"
        assert env.var("MISSING", "d") == "d"
        binding = env.kv("CACHE")
        assert binding is not None
        assert binding._raw is kv
    assert sorted(looked_up) == ["CACHE", "MISSING", "TTL"]
