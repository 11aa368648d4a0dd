"""The runtime adapter over the strict fakes: the one place JS-shaped values are converted."""

from __future__ import annotations

from typing import Any

import pytest
from workers import JsDict
from workers import Request as RuntimeRequest

from bookmeta import FakeClock, Request
from bookmeta.runtime import (
    KVBinding,
    R2Binding,
    RuntimeEnv,
    read_request,
    to_python,
    to_runtime_response,
)
from harness import FakeContext, FakeKV, FakeR2, FakeSecret
from harness.system import FakeEnv


async def test_request_round_trip() -> None:
    """A runtime request becomes a Request with lower-case headers and its body."""
    raw = RuntimeRequest(
        "https://w.test/a?b=1", method="POST", headers={"X-Thing": "v"}, body="hello"
    )
    got = await read_request(raw)
    assert got == Request("POST", "https://w.test/a?b=1", {"x-thing": "v"}, b"hello")


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
