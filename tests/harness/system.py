"""The in-process system: the three workers wired from `wrangler.toml.d/` as deployed.

Each `System` is one set of isolates: entry modules are loaded fresh (so per-isolate state
starts empty), KV namespaces are shared by id and R2 buckets by name across workers, Durable
Object namespaces by worker and class, and service bindings dispatch to the bound worker's
`Default` in-process. `sibling()` gives another set of isolates over the same storage (as
Cloudflare runs many). A test fails when config and code disagree (a binding the code needs
is missing, a service name is wrong, a Durable Object class has no migration).
"""

from __future__ import annotations

import importlib.util
import itertools
import tomllib
from collections.abc import Callable, Coroutine, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from workers import FetchResponse, Request, Response

from bookmeta._clock import FakeClock
from bookmeta._env import Clocks, use_clocks

from .bindings import (
    FakeContext,
    FakeController,
    FakeRateLimit,
    FakeSecret,
    FakeServiceBinding,
    Traffic,
)
from .durable import DurableObjects, FakeDurableObjectNamespace
from .queues import ConsumerSpec, FakeMessageBatch, FakeQueueProducer, Queues
from .storage import FakeKV, FakeR2

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "wrangler.toml.d"
# 2026-01-01T00:00:00Z: a fixed wall clock start keeps stamps deterministic.
EPOCH_START = 1_767_225_600.0
_isolates = itertools.count()
# Plain secrets (`wrangler secret put`, `.dev.vars`) are not declared in the configs: which
# worker has which is stated here (as in .dev.vars.example). Secrets Store secrets go only to
# the workers whose config binds them.
PLAIN_SECRETS: dict[str, tuple[str, ...]] = {
    "WARMER_ADMIN_TOKEN": ("cache_warmer",),
    "PROXY_APP_KEYS": ("books_api_proxy",),
}
# The contexts of one top-level invocation (and the binding calls it makes): drained at its end.
_INVOCATION: ContextVar[list[FakeContext] | None] = ContextVar("harness_invocation", default=None)


async def _drain(contexts: list[FakeContext]) -> None:
    """Await all background work of an invocation; re-raise the first failure."""
    while any(c.pending for c in contexts):
        for ctx in list(contexts):
            await ctx.drain()
    errors = [e for c in contexts for e in c.errors]
    if errors:
        raise errors[0]


@dataclass(frozen=True)
class ObjectBinding:
    """One ``[[durable_objects.bindings]]`` entry."""

    class_name: str
    script_name: str | None = None  # another worker's service name; None = this worker


@dataclass
class WorkerSpec:
    """One worker as its config declares it (top level or one `[env.X]`)."""

    key: str  # folder name under workers/
    name: str  # service name
    config: Path
    main: Path
    vars: dict[str, str] = field(default_factory=dict)
    kv: dict[str, str] = field(default_factory=dict)  # binding -> namespace id
    r2: dict[str, str] = field(default_factory=dict)  # binding -> bucket name
    services: dict[str, str] = field(default_factory=dict)  # binding -> service name
    secrets_store: list[str] = field(default_factory=list)
    crons: list[str] = field(default_factory=list)
    # binding -> (namespace id, limit, period)
    ratelimits: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    durable_objects: dict[str, ObjectBinding] = field(default_factory=dict)
    migrations: list[dict[str, Any]] = field(default_factory=list)
    producers: dict[str, str] = field(default_factory=dict)  # binding -> queue name
    consumers: list[dict[str, Any]] = field(default_factory=list)  # [[queues.consumers]]

    def object_classes(self) -> dict[str, bool]:
        """Durable Object classes the migrations leave in place: name -> SQLite-backed."""
        classes: dict[str, bool] = {}
        for step in self.migrations:
            classes.update(dict.fromkeys(step.get("new_sqlite_classes", []), True))
            classes.update(dict.fromkeys(step.get("new_classes", []), False))
            for rename in step.get("renamed_classes", []):
                if rename.get("from") in classes:
                    classes[rename["to"]] = classes.pop(rename["from"])
            for name in step.get("deleted_classes", []):
                classes.pop(name, None)
        return classes


def load_specs(config_dir: Path = CONFIG_DIR, env: str | None = None) -> dict[str, WorkerSpec]:
    """Worker specs from every `*.toml` config in ``config_dir`` (optionally one environment)."""
    specs: dict[str, WorkerSpec] = {}
    for path in sorted(config_dir.glob("*.toml")):
        top = tomllib.loads(path.read_text())
        if "main" not in top:
            continue  # e.g. pyproject.toml, or the wrangler.toml pywrangler reads for its flags
        section = top if env is None else top.get("env", {}).get(env, {})
        main = (path.parent / top["main"]).resolve()
        spec = WorkerSpec(
            key=main.parent.name,
            name=section.get("name", top["name"]),
            config=path,
            main=main,
            vars={k: str(v) for k, v in section.get("vars", {}).items()},
            kv={b["binding"]: b["id"] for b in section.get("kv_namespaces", [])},
            r2={b["binding"]: b["bucket_name"] for b in section.get("r2_buckets", [])},
            services={b["binding"]: b["service"] for b in section.get("services", [])},
            secrets_store=[b["binding"] for b in section.get("secrets_store_secrets", [])],
            crons=list(top.get("triggers", {}).get("crons", [])),
            ratelimits={
                b["name"]: (str(b["namespace_id"]), b["simple"]["limit"], b["simple"]["period"])
                for b in section.get("ratelimits", [])
            },
            durable_objects={
                b["name"]: ObjectBinding(b["class_name"], b.get("script_name"))
                for b in section.get("durable_objects", {}).get("bindings", [])
            },
            producers={
                b["binding"]: b["queue"] for b in section.get("queues", {}).get("producers", [])
            },
            consumers=list(section.get("queues", {}).get("consumers", [])),
            # Migrations are inherited by environments (bindings are not).
            migrations=list(section.get("migrations", top.get("migrations", []))),
        )
        specs[spec.key] = spec
    return specs


class FakeEnv:
    """The ``env`` object: bindings and vars as attributes."""

    def __init__(self, bindings: Mapping[str, Any]) -> None:
        self.__dict__.update(bindings)


class System:
    """All three workers in one process, sharing a fake clock, KV namespaces and R2 buckets."""

    def __init__(
        self,
        *,
        secrets: Mapping[str, str | None] | None = None,
        vars: Mapping[str, Mapping[str, str]] | None = None,
        config_dir: Path = CONFIG_DIR,
        env: str | None = None,
        clock: FakeClock | None = None,
        enforce_kv_write_rate: bool = True,
        enforce_rate_limits: bool = True,
        client_ip: str = "203.0.113.7",
    ) -> None:
        self.clock = clock or FakeClock(EPOCH_START)
        self.clocks = Clocks(wall=self.clock, monotonic=self.clock, sleep=self.clock.sleep)
        self.specs = load_specs(config_dir, env)
        self.by_service = {s.name: s for s in self.specs.values()}
        self.secrets = dict(secrets or {})
        declared = {b for spec in self.specs.values() for b in spec.secrets_store}
        unknown = set(self.secrets) - declared - set(PLAIN_SECRETS)
        if unknown:
            raise LookupError(f"no worker has the secrets {sorted(unknown)}")
        self.traffic: list[Traffic] = []
        self.kv_namespaces: dict[str, FakeKV] = {}
        self.buckets: dict[str, FakeR2] = {}
        self.rate_limits: dict[str, FakeRateLimit] = {}
        self.client_ip = client_ip
        self.objects = DurableObjects()
        self.queues = Queues(self.clock)
        self.modules: dict[str, ModuleType] = {}
        self.envs: dict[str, FakeEnv] = {}
        self._overrides = {k: dict(v) for k, v in (vars or {}).items()}
        for spec in self.specs.values():
            for ns in spec.kv.values():
                self.kv_namespaces.setdefault(
                    ns, FakeKV(clock=self.clock, enforce_write_rate=enforce_kv_write_rate)
                )
            for bucket in spec.r2.values():
                self.buckets.setdefault(bucket, FakeR2())
            for ns, limit, period in spec.ratelimits.values():
                self.rate_limits.setdefault(
                    ns, FakeRateLimit(limit, period, self.clock, enforce_rate_limits)
                )
            for consumer in spec.consumers:
                queue = self.queues.queue(consumer["queue"])
                if queue.consumer is not None:
                    raise LookupError(f"queue {consumer['queue']!r} has two consumers")
                queue.consumer = ConsumerSpec(
                    worker=spec.key,
                    max_batch_size=int(consumer.get("max_batch_size", 10)),
                    max_retries=int(consumer.get("max_retries", 3)),
                    dead_letter_queue=consumer.get("dead_letter_queue"),
                    retry_delay=int(consumer.get("retry_delay", 0)),
                )
        for spec in self.specs.values():
            self.envs[spec.key] = self._build_env(spec, self._overrides.get(spec.key, {}))

    def sibling(self) -> System:
        """Another set of isolates of this deployment: entry modules loaded afresh (empty
        per-isolate state), the same clock, secrets, vars, KV, R2 and Durable Objects."""
        twin = object.__new__(System)
        twin.__dict__.update(self.__dict__)
        twin.modules = {}
        twin.envs = {}
        for spec in self.specs.values():
            twin.envs[spec.key] = twin._build_env(spec, self._overrides.get(spec.key, {}))
        return twin

    # -- wiring --------------------------------------------------------------------------

    def _build_env(self, spec: WorkerSpec, overrides: Mapping[str, str]) -> FakeEnv:
        bindings: dict[str, Any] = dict(spec.vars)
        bindings.update(overrides)
        for binding, ns in spec.kv.items():
            bindings[binding] = self.kv_namespaces[ns]
        for binding, bucket in spec.r2.items():
            bindings[binding] = self.buckets[bucket]
        for binding, service in spec.services.items():
            if service not in self.by_service:
                raise LookupError(
                    f"{spec.key}: binding {binding} names unknown service {service!r}"
                )
            bindings[binding] = FakeServiceBinding(
                spec.key, binding, service, self._invoke, self.traffic
            )
        for binding, (ns, _, _) in spec.ratelimits.items():
            bindings[binding] = self.rate_limits[ns]
        for binding, target in spec.durable_objects.items():
            bindings[binding] = self._object_namespace(spec, binding, target)
        for binding, queue in spec.producers.items():
            bindings[binding] = FakeQueueProducer(self.queues.queue(queue))
        for binding in spec.secrets_store:
            bindings[binding] = FakeSecret(self.secrets.get(binding))
        for name, value in self.secrets.items():
            if spec.key in PLAIN_SECRETS.get(name, ()) and value is not None:
                bindings.setdefault(name, value)  # plain secrets (.dev.vars / wrangler secret put)
        return FakeEnv(bindings)

    def _object_namespace(
        self, spec: WorkerSpec, binding: str, target: ObjectBinding
    ) -> FakeDurableObjectNamespace:
        owner = spec
        if target.script_name is not None:
            if target.script_name not in self.by_service:
                raise LookupError(
                    f"{spec.key}: binding {binding} names unknown script {target.script_name!r}"
                )
            owner = self.by_service[target.script_name]
        classes = owner.object_classes()
        if target.class_name not in classes:
            raise LookupError(
                f"{owner.key}: Durable Object class {target.class_name!r} (binding {binding}) "
                "has no migration: add it to a [[migrations]] new_sqlite_classes"
            )
        key = owner.key

        def load_class() -> Any:
            cls = getattr(self.module(key), target.class_name, None)
            if cls is None:
                raise LookupError(f"{owner.main} does not export {target.class_name}")
            return cls

        return FakeDurableObjectNamespace(
            namespace=f"{owner.name}:{target.class_name}",
            class_name=target.class_name,
            sqlite=classes[target.class_name],
            load_class=load_class,
            env=lambda: self.envs[key],
            objects=self.objects,
            caller=spec.key,
            binding=binding,
            traffic=self.traffic,
        )

    def module(self, key: str) -> ModuleType:
        """The worker's entry module, loaded once per System (one isolate)."""
        if key not in self.modules:
            spec = self.specs[key]
            name = f"_entry_{key}_{next(_isolates)}"
            loader = importlib.util.spec_from_file_location(name, spec.main)
            if loader is None or loader.loader is None:
                raise ImportError(f"cannot load {spec.main}")
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
            if not hasattr(module, "Default"):
                raise LookupError(f"{spec.main} has no Default entrypoint")
            self.modules[key] = module
        return self.modules[key]

    def kv(self, key: str, binding: str) -> FakeKV:
        """The KV namespace bound as ``binding`` in worker ``key``."""
        return self.kv_namespaces[self.specs[key].kv[binding]]

    def r2(self, key: str, binding: str) -> FakeR2:
        """The R2 bucket bound as ``binding`` in worker ``key``."""
        return self.buckets[self.specs[key].r2[binding]]

    # -- invocation ----------------------------------------------------------------------

    async def _invoke(self, service: str, call: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
        spec = self.by_service[service]
        return await self._run(spec.key, call)

    async def _run(self, key: str, call: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
        module = self.module(key)
        contexts = _INVOCATION.get()
        top = contexts is None
        if contexts is None:
            contexts = []
        token = _INVOCATION.set(contexts) if top else None
        ctx = FakeContext()
        contexts.append(ctx)
        entry = module.Default(ctx, self.envs[key])
        try:
            with use_clocks(self.clocks):
                result = await call(entry)
                if top:
                    await _drain(contexts)
        finally:
            if token is not None:
                _INVOCATION.reset(token)
        return result

    async def fetch(
        self,
        key: str,
        path: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str | None] | None = None,
        body: str | bytes | None = None,
    ) -> FetchResponse:
        """Send an HTTP request to worker ``key`` (``path`` relative to its URL) from the
        internet: like Cloudflare's edge, it carries ``cf-connecting-ip`` (``client_ip``) unless
        ``headers`` set it (to None: leave it out). Service-binding fetches never carry it."""
        url = path if "://" in path else f"https://{self.specs[key].name}.test{path}"
        sent = {"cf-connecting-ip": self.client_ip}
        sent.update({k.lower(): v for k, v in (headers or {}).items()})
        options: dict[str, Any] = {
            "method": method,
            "headers": {k: v for k, v in sent.items() if v is not None},
        }
        if body is not None:
            options["body"] = body
        return await self.send(key, Request(url, **options))

    async def send(self, key: str, request: Request) -> FetchResponse:
        """Send a runtime request to worker ``key``; the caller keeps it (``bytes_read``)."""
        url = request.url

        async def call(entry: Any) -> Any:
            return await entry.fetch(request)

        response = await self._run(key, call)
        if not isinstance(response, Response):
            raise TypeError(f"{key}: fetch did not return a workers.Response")
        return FetchResponse(response._body, response.status, response.headers, url)

    async def rpc(self, key: str, method: str, *args: Any) -> Any:
        """Call RPC ``method`` on worker ``key`` as another worker would."""
        spec = self.specs[key]
        binding = FakeServiceBinding("test", "TEST", spec.name, self._invoke, self.traffic)
        return await getattr(binding, method)(*args)

    async def _consume(self, key: str, batch: FakeMessageBatch) -> None:
        async def call(entry: Any) -> Any:
            return await entry.queue(batch, self.envs[key], entry.ctx)

        await self._run(key, call)

    async def deliver(self, *, max_batches: int = 10_000) -> int:
        """Deliver every queue message due now to its consumer (batches; retries due now
        too); returns the number of batches. A consumer that throws has its batch retried
        (the error is kept in ``queues.errors``)."""
        return await self.queues.deliver(self._consume, max_batches=max_batches)

    async def run_queues(self, *, within: float, step: float | None = None) -> float:
        """Deliver, then move the clock to the next delayed message, until nothing is left
        or ``within`` seconds passed; returns the seconds the clock moved. ``step`` caps each
        move (to let crons or other work interleave)."""
        start = self.clock()
        while True:
            await self.deliver()
            due = self.queues.next_due()
            if due is None or due - start > within:
                return self.clock() - start
            wait = due - self.clock()
            if step is not None:
                wait = min(wait, step)
            self.clock.advance(max(wait, 0.0))

    async def scheduled(self, key: str, cron: str) -> FakeController:
        """Fire cron ``cron`` on worker ``key`` (it must be one of the config's triggers)."""
        spec = self.specs[key]
        if cron not in spec.crons:
            raise LookupError(f"{key} has no cron trigger {cron!r} (has {spec.crons})")
        controller = FakeController(cron, self.clock() * 1000.0)

        async def call(entry: Any) -> Any:
            return await entry.scheduled(controller, self.envs[key], entry.ctx)

        await self._run(key, call)
        return controller
