"""Profiling entry of the workerd bench: the proxy, plus where a request's time goes inside workerd.

bench/workerd.py runs it beside a link to ``proxy_app`` (the real app, nothing copied) as
``books-api-proxy``. Every request is the proxy's, except:

* ``GET /__profile/stages?path=<path>&n=<n>``: runs the proxy's own handling of ``path`` n
  times inside this one invocation and answers the mean microseconds of each stage
  (runtime request -> ``Request``, building the App, ``App.handle``, ``Response`` -> runtime
  response), plus probes of single costs (one KV read, the request log line, ...).
* ``GET /__profile/cprofile?path=<path>&n=<n>``: the same loop under cProfile; the top
  functions by own time and by cumulative time.
* ``GET /__profile/miss?isbns=<isbn,...>``: each ISBN (fresh: a merged miss) handled once: the
  event loop's busy time per miss (half of them), and cProfile's top functions (the others).
"""

import asyncio
import cProfile
import io
import json
import pstats
import sys
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import js
from pyodide.ffi import to_js
from workers import Request as RuntimeRequest
from workers import Response, WorkerEntrypoint, _EnvWrapper

from bookmeta import Log, json_response, serve
from bookmeta.runtime import EnvMemo, RuntimeEnv, fetch_client, read_request, to_runtime_response
from proxy_app import Isolate, build_app
from proxy_app.config import VAR_NAMES

_ISOLATE = Isolate()
_ENV = EnvMemo()  # as the proxy's entry module
_JSON = {"content-type": "application/json"}


def _us(seconds, n):
    return round(seconds * 1e6 / n, 1)


class _MemoryKV:
    def __init__(self, items):
        self.items = items

    async def get(self, key):
        return self.items.get(key)


class _MemoryKVEnv(RuntimeEnv):
    def __init__(self, env, ctx, items):
        super().__init__(env, ctx)
        self._memory = _MemoryKV(items)

    def kv(self, name):
        return self._memory


class Default(WorkerEntrypoint):
    def _app(self):  # as the proxy's entry module builds it
        env = RuntimeEnv(self.env, self.ctx, memo=_ENV)
        return build_app(env, _ISOLATE, client_factory=fetch_client)

    async def fetch(self, request):
        url = urlsplit(request.url)
        if not url.path.startswith("/__profile/"):
            return to_runtime_response(await self._app().handle(await read_request(request)))
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        target = f"{url.scheme}://{url.netloc}{params.get('path', '/health')}"
        n = int(params.get("n", "100"))
        if url.path == "/__profile/stages":
            body = await self._stages(target, n, params.get("key"))
        elif url.path == "/__profile/miss":
            isbns = [i for i in params.get("isbns", "").split(",") if i]
            body = await self._miss(f"{url.scheme}://{url.netloc}", isbns)
        else:
            body = await self._cprofile(target, n, int(params.get("top", "30")))
        return Response(json.dumps(body), headers=_JSON)

    async def _one(self, target, marks):
        t0 = time.perf_counter()
        req = await read_request(RuntimeRequest(js.Request.new(target)))
        t1 = time.perf_counter()
        app = self._app()
        t2 = time.perf_counter()
        resp = await app.handle(req)
        t3 = time.perf_counter()
        to_runtime_response(resp)
        t4 = time.perf_counter()
        for i, dt in enumerate((t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            marks[i] += dt
        return resp

    async def _stages(self, target, n, key):
        marks = [0.0, 0.0, 0.0, 0.0]
        status = None
        started = time.perf_counter()
        for _ in range(n):
            status = (await self._one(target, marks)).status
        total = time.perf_counter() - started
        names = ("read_request", "build_app", "app.handle", "to_runtime_response")
        out = {"status": status, "n": n, "total_us": _us(total, n)}
        out["stages_us"] = {name: _us(mark, n) for name, mark in zip(names, marks, strict=True)}
        out["probes_us"] = await self._probes(target, n, key)
        return out

    async def _probes(self, target, n, key):
        probes = {}

        def timed(name, fn):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            probes[name] = _us(time.perf_counter() - t0, n)

        req = RuntimeRequest(js.Request.new(target))
        timed("request.url", lambda: req.url)
        timed("request.method", lambda: str(req.method))
        timed("request.headers", lambda: req.headers)
        timed("RuntimeEnv+var", lambda: RuntimeEnv(self.env, self.ctx).var("CACHE_HOT_TTL", ""))
        timed("env.CACHE (wrapper)", lambda: self.env.CACHE)
        # Each request gets a new env wrapper from the runtime (attribute look-ups are cached on
        # it only for that request): what reaching the bindings and vars costs then.
        raw_env = self.env._env
        bindings = ("CACHE", "API_CACHE_COLD", "ISBNDB_WORKER")
        timed("fresh env: 3 bindings", lambda: [getattr(_EnvWrapper(raw_env), b) for b in bindings])
        timed(
            "fresh env: 9 vars", lambda: [getattr(_EnvWrapper(raw_env), v, None) for v in VAR_NAMES]
        )
        timed(
            "fresh env: build_app",
            lambda: build_app(RuntimeEnv(_EnvWrapper(raw_env), self.ctx), _ISOLATE),
        )
        timed(
            "fresh env: build_app, EnvMemo",
            lambda: build_app(RuntimeEnv(_EnvWrapper(raw_env), self.ctx, memo=_ENV), _ISOLATE),
        )
        env = RuntimeEnv(self.env, self.ctx)
        timed("isolate.settings", lambda: _ISOLATE.settings(env))
        timed("uuid4", lambda: uuid.uuid4().hex)
        sink = Log("books_api_proxy", "x" * 32)
        timed("log line (stdout)", lambda: sink.event("probe", path="/search/auto", ms=1.0))
        quiet = Log("books_api_proxy", "x" * 32, lambda line: None)
        timed("log line (no sink)", lambda: quiet.event("probe", path="/search/auto", ms=1.0))
        timed("sys.stdout.write", lambda: sys.stdout.write("{}\n"))
        js_req = js.Request.new(
            target,
            to_js({"headers": {"x-a": "1", "origin": "o"}}, dict_converter=js.Object.fromEntries),
        )
        timed("headers via SDK (HTTPMessage)", lambda: dict(RuntimeRequest(js_req).headers.items()))
        timed(
            "headers via Object.fromEntries", lambda: js.Object.fromEntries(js_req.headers).to_py()
        )
        body = json.dumps({"items": [{"title": "x" * 600}] * 1}).encode()
        headers = {
            "content-type": "application/json",
            "x-cache": "kv",
            "x-request-id": "r" * 32,
            "x-response-time": "1.0ms",
            "access-control-allow-origin": "*",
            "access-control-expose-headers": "x-cache, x-response-time",
        }
        timed("Response(bytes, 6 headers) SDK", lambda: Response(body, status=200, headers=headers))
        text = body.decode()
        timed("Response(str, 6 headers) SDK", lambda: Response(text, status=200, headers=headers))
        timed("Response(str, 1 header) SDK", lambda: Response(text, headers=_JSON))
        obj = js.Object.fromEntries
        timed(
            "js.Response.new(str, init obj)",
            lambda: js.Response.new(
                text, to_js({"status": 200, "headers": headers}, dict_converter=obj)
            ),
        )
        timed(
            "js.Response.new(to_js(bytes), init)",
            lambda: js.Response.new(
                to_js(body), to_js({"status": 200, "headers": headers}, dict_converter=obj)
            ),
        )
        line = json.dumps(
            {
                "level": "info",
                "worker": "w",
                "rid": "r" * 32,
                "event": "request",
                "path": "/search/auto",
                "status": 200,
                "ms": 1.0,
            }
        )
        timed("print(line)", lambda: print(line))
        timed("js.console.log(line)", lambda: js.console.log(line))
        # The per-client limits' call (wrangler dev simulates the binding with a Durable Object
        # that writes SQLite on every call) against the Python side of awaiting any JS promise.
        limiter = getattr(self.env, "LIMIT_IP_REQUESTS", None)
        if limiter is not None:
            t0 = time.perf_counter()
            for _ in range(n):
                await limiter.limit(key="probe")
            probes["ratelimit.limit()"] = _us(time.perf_counter() - t0, n)
        t0 = time.perf_counter()
        for _ in range(n):
            await js.Promise.resolve(None)
        probes["await resolved JS promise"] = _us(time.perf_counter() - t0, n)
        secret = getattr(self.env, "GOOGLE_BOOKS_API_KEY", None)
        if secret is not None:
            t0 = time.perf_counter()
            for _ in range(n):
                await secret.get()
            probes["secret.get"] = _us(time.perf_counter() - t0, n)
        if key:
            probes.update(await self._edge_vs_kv(key, n))
        if key:
            kv = self.env.CACHE
            t0 = time.perf_counter()
            value = None
            for _ in range(n):
                value = await kv.get(key)
            probes["kv.get"] = _us(time.perf_counter() - t0, n)
            if value is not None:
                if "/search/" in target:
                    probes.update(await self._memory_kv_hit(target, key, value, n))
                data = json.loads(value)
                timed("json.loads(entry)", lambda: json.loads(value))
                timed("json_response(entry)", lambda: json_response(data))
                body = json_response(data)
                timed("to_runtime_response", lambda: to_runtime_response(body))
        return probes

    async def _edge_vs_kv(self, key, n):
        """One cached entry read from the Cache API (match + body text) and from KV, in
        alternating rounds: what a per-location tier in front of KV would save or cost."""
        kv = self.env.CACHE
        value = await kv.get(key)
        if value is None:
            return {}
        cache = js.caches.default
        url = "https://books-api-proxy.cache/" + key
        init = to_js(
            {"headers": {"cache-control": "max-age=600"}}, dict_converter=js.Object.fromEntries
        )
        await cache.put(url, js.Response.new(value, init))
        totals = {"edge: match+text": 0.0, "kv.get (same entry)": 0.0, "edge: match (absent)": 0.0}
        hits = 0
        for _ in range(n):
            t0 = time.perf_counter()
            got = await cache.match(url)
            text = await got.text() if got is not None else None
            t1 = time.perf_counter()
            same = await kv.get(key)
            t2 = time.perf_counter()
            await cache.match(url + "-absent")
            t3 = time.perf_counter()
            hits += text == same
            totals["edge: match+text"] += t1 - t0
            totals["kv.get (same entry)"] += t2 - t1
            totals["edge: match (absent)"] += t3 - t2
        out = {name: _us(total, n) for name, total in totals.items()}
        out["edge hits equal to KV"] = hits
        return out

    async def _memory_kv_hit(self, target, key, value, n):
        """app.handle of the hit with the KV tier in memory: the CPU a hit adds to one read."""
        env = _MemoryKVEnv(self.env, self.ctx, {key: value})
        req = await read_request(RuntimeRequest(js.Request.new(target)))
        out = {}
        for name, sink in (("with log line", None), ("without log line", lambda line: None)):
            t0 = time.perf_counter()
            for _ in range(n):
                app = build_app(env, _ISOLATE)
                if sink is None:
                    resp = await app.handle(req)
                else:
                    resp = await serve(
                        req,
                        app._handle,
                        worker="w",
                        metrics=_ISOLATE.metrics,
                        clock=env.clocks.monotonic,
                        sink=sink,
                    )
            out[f"build_app+handle, KV in memory, {name}"] = _us(time.perf_counter() - t0, n)
        assert resp.headers.get("x-cache") == "kv", resp.headers
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(n):
            await build_app(env, _ISOLATE).handle(req)
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        out["cprofile (KV in memory)"] = text.getvalue().splitlines()
        return out

    async def _miss(self, base, isbns):
        """Merged misses (fresh ISBNs) handled by the proxy: the first half timed by the event
        loop's busy time (every callback the loop runs, i.e. the isolate's Python and the JS it
        calls synchronously; waiting on I/O and on the other workers is not in it), the second
        half under cProfile for the top functions (the profiler itself inflates the time)."""
        half = len(isbns) // 2
        statuses = []
        busy = [0.0]
        loop = asyncio.get_event_loop()
        plain_call_later = loop.call_later

        def timed_call_later(delay, callback, *args, context=None):
            def timed(*a):
                t0 = time.perf_counter()
                try:
                    return callback(*a)
                finally:
                    busy[0] += time.perf_counter() - t0

            return plain_call_later(delay, timed, *args, context=context)

        async def one(isbn):
            url = f"{base}/search/auto?q={isbn}"
            req = await read_request(RuntimeRequest(js.Request.new(url)))
            t0 = time.perf_counter()
            resp = await self._app().handle(req)
            statuses.append((resp.status, resp.headers.get("x-cache")))
            return time.perf_counter() - t0

        walls = []
        loop.call_later = timed_call_later  # call_soon goes through it too
        try:
            for isbn in isbns[:half]:
                walls.append(await one(isbn))
        finally:
            del loop.call_later  # the class's call_later again (no instance attribute before)
        busy_first_half = busy[0]  # callbacks wrapped earlier may still run during the second
        profiler = cProfile.Profile()
        for isbn in isbns[half:]:
            profiler.enable()
            await one(isbn)
            profiler.disable()
        stats = pstats.Stats(profiler)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(20)
        return {
            "misses": len(isbns),
            "statuses": statuses,
            "wall_ms_per_miss": round(sum(walls) * 1000 / max(half, 1), 1),
            "busy_ms_per_miss": round(busy_first_half * 1000 / max(half, 1), 2),
            "python_ms_per_miss": round(stats.total_tt * 1000 / max(len(isbns) - half, 1), 2),
            "tottime": text.getvalue().splitlines(),
        }

    async def _cprofile(self, target, n, top):
        marks = [0.0, 0.0, 0.0, 0.0]
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(n):
            await self._one(target, marks)
        profiler.disable()
        out = {}
        for order in ("tottime", "cumulative"):
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats(order).print_stats(top)
            out[order] = text.getvalue().splitlines()
        return out
