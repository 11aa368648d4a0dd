"""The harness is as strict as the runtime: these pin the limits it enforces."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from workers import JsDict

from bookmeta._clock import FakeClock
from harness import DataCloneError, FakeKV, FakeR2, KVError, R2Error, System, rpc_clone

ECHO = """
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        async def later():
            await self.env.STORE.put("bg", "done", expirationTtl=60)

        self.ctx.waitUntil(later())
        body = await request.text()
        return Response(f"{request.method} {request.url} {body}", status=200,
                        headers={"x-rid": request.headers.get("x-request-id", "")})

    async def echo(self, value):
        return value

    async def call_other(self, path):
        resp = await self.env.OTHER.fetch(path)
        return await resp.text()
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """Two tiny workers wired like the real configs: `a` binds to `b`."""
    for name in ("a", "b"):
        (tmp_path / "workers" / name).mkdir(parents=True)
        (tmp_path / "workers" / name / "entry.py").write_text(ECHO)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "a.toml").write_text(
        textwrap.dedent("""
        name = "svc-a"
        main = "../workers/a/entry.py"
        [[kv_namespaces]]
        binding = "STORE"
        id = "ns1"
        [[services]]
        binding = "OTHER"
        service = "svc-b"
    """)
    )
    (conf / "b.toml").write_text(
        textwrap.dedent("""
        name = "svc-b"
        main = "../workers/b/entry.py"
        [[kv_namespaces]]
        binding = "STORE"
        id = "ns1"
        [triggers]
        crons = ["*/15 * * * *"]
    """)
    )
    return conf


async def test_fetch_dispatches_and_drains_wait_until(config_dir: Path) -> None:
    """A fetch reaches the worker and its waitUntil work has run when fetch returns."""
    system = System(config_dir=config_dir)
    resp = await system.fetch("a", "/hello", method="POST", body="hi")
    assert resp.status == 200
    assert await resp.text() == "POST https://svc-a.test/hello hi"
    assert system.kv("a", "STORE").dump() == {"bg": "done"}
    assert system.kv("b", "STORE") is system.kv("a", "STORE")


async def test_binding_fetch_rejects_relative_urls(config_dir: Path) -> None:
    """A relative URL over a service binding fails, as in the runtime."""
    system = System(config_dir=config_dir)
    with pytest.raises(TypeError, match="Fetch API cannot load"):
        await system.rpc("a", "call_other", "/relative")
    assert (
        await system.rpc("a", "call_other", "https://b.internal/x") == "GET https://b.internal/x "
    )


async def test_rpc_refuses_tuples_kwargs_and_objects(config_dir: Path) -> None:
    """RPC arguments follow structured clone: tuples, kwargs and custom objects raise."""
    system = System(config_dir=config_dir)
    with pytest.raises(TypeError, match="cannot be sent over RPC"):
        await system.rpc("a", "echo", (1, 2))
    with pytest.raises(DataCloneError):
        await system.rpc("a", "echo", object())
    binding = system.envs["a"].OTHER
    with pytest.raises(TypeError, match="keyword arguments"):
        await binding.echo(value=1)
    with pytest.raises(TypeError, match="does not implement"):
        await binding.nope()


async def test_rpc_copies_dicts_and_turns_bytes_into_memoryview(config_dir: Path) -> None:
    """Dicts arrive as a dict subclass copy; bytes come back as memoryview."""
    system = System(config_dir=config_dir)
    sent = {"a": [1, {"b": None}]}
    got = await system.rpc("a", "echo", sent)
    assert isinstance(got, JsDict)
    assert got == sent
    assert got is not sent
    assert isinstance(await system.rpc("a", "echo", b"xy"), memoryview)


async def test_scheduled_needs_a_configured_cron(config_dir: Path) -> None:
    """Only the config's cron triggers can fire."""
    system = System(config_dir=config_dir)
    with pytest.raises(LookupError):
        await system.scheduled("b", "0 2 * * *")


async def test_kv_limits() -> None:
    """KV rejects short TTLs, long keys, big metadata and a second write within a second."""
    clock = FakeClock(1000.0)
    kv = FakeKV(clock=clock)
    with pytest.raises(KVError, match="at least 60"):
        await kv.put("k", "v", expirationTtl=30)
    with pytest.raises(KVError, match="too long"):
        await kv.put("k" * 513, "v")
    with pytest.raises(KVError, match="metadata too large"):
        await kv.put("k", "v", metadata={"x": "y" * 1100})
    with pytest.raises(KVError, match="accepts only strings"):
        await kv.put("k", {"a": 1})
    await kv.put("k", "v", expirationTtl=60, metadata={"m": 1})
    with pytest.raises(KVError, match="429"):
        await kv.put("k", "v2")
    clock.advance(1.0)
    await kv.put("k", "v2", expirationTtl=60)
    assert await kv.get("k") == "v2"
    assert (await kv.getWithMetadata("k"))["metadata"] is None
    clock.advance(60.0)
    assert await kv.get("k") is None


async def test_kv_json_and_list_paging() -> None:
    """`get(k, "json")` parses; `list` pages with a cursor."""
    kv = FakeKV(clock=FakeClock(0.0))
    for i in range(5):
        await kv.put(f"p:{i}", f'{{"i": {i}}}')
    await kv.put("other", "x")
    assert await kv.get("p:3", "json") == {"i": 3}
    first = await kv.list(prefix="p:", limit=2)
    assert [k["name"] for k in first["keys"]] == ["p:0", "p:1"]
    assert first["list_complete"] is False
    rest = await kv.list(prefix="p:", limit=10, cursor=first["cursor"])
    assert [k["name"] for k in rest["keys"]] == ["p:2", "p:3", "p:4"]
    assert rest["list_complete"] is True


async def test_r2_limits_and_readers() -> None:
    """R2 keeps string custom metadata up to 8 KiB and reads a body once."""
    r2 = FakeR2()
    with pytest.raises(R2Error, match="too large"):
        await r2.put("k", "v", customMetadata={"x": "y" * 8200})
    with pytest.raises(R2Error, match="strings"):
        await r2.put("k", "v", customMetadata={"x": 1})
    await r2.put(
        "k", "hello", customMetadata={"a": "b"}, httpMetadata={"contentType": "text/plain"}
    )
    obj = await r2.get("k")
    assert obj is not None
    assert await obj.text() == "hello"
    with pytest.raises(R2Error, match="already been used"):
        await obj.text()
    assert obj.customMetadata == {"a": "b"}
    head = await r2.head("k")
    assert head is not None
    assert head.size == 5
    assert await r2.get("missing") is None
    listing = await r2.list(prefix="k")
    assert [o.key for o in listing["objects"]] == ["k"]


async def test_injected_faults_make_named_operations_throw() -> None:
    """`failing` makes the named KV and R2 operations throw the runtime's error; others work."""
    kv, r2 = FakeKV(clock=FakeClock(0.0)), FakeR2()
    kv.failing.add("put")
    r2.failing.add("get")
    with pytest.raises(KVError, match="503"):
        await kv.put("k", "v")
    assert await kv.get("k") is None
    await r2.put("k", "v")
    with pytest.raises(R2Error, match="503"):
        await r2.get("k")
    kv.failing.clear()
    await kv.put("k", "v")
    assert await kv.get("k") == "v"


def test_rpc_clone_is_deep() -> None:
    """Nested values are copied, not shared."""
    inner: dict[str, object] = {"x": [1]}
    out = rpc_clone({"inner": inner})
    inner["x"] = [2]
    assert out["inner"]["x"] == [1]
