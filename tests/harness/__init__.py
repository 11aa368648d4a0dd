"""In-process Workers harness: strict fakes of KV, R2, Durable Objects, service bindings,
context and cron."""

from .bindings import (
    DataCloneError,
    FakeContext,
    FakeController,
    FakeRateLimit,
    FakeSecret,
    FakeServiceBinding,
    Traffic,
    rpc_clone,
)
from .durable import (
    DurableObjectError,
    DurableObjects,
    FakeDurableObjectNamespace,
    FakeSqlStorage,
    ObjectCall,
    SqlRow,
)
from .queues import FakeQueue, FakeQueueProducer, QueueError, Queues
from .storage import FakeKV, FakeR2, KVError, R2Error
from .system import System, WorkerSpec, load_specs

__all__ = [
    "DataCloneError",
    "DurableObjectError",
    "DurableObjects",
    "FakeContext",
    "FakeController",
    "FakeDurableObjectNamespace",
    "FakeKV",
    "FakeQueue",
    "FakeQueueProducer",
    "FakeR2",
    "FakeRateLimit",
    "FakeSecret",
    "FakeServiceBinding",
    "FakeSqlStorage",
    "KVError",
    "ObjectCall",
    "QueueError",
    "Queues",
    "R2Error",
    "SqlRow",
    "System",
    "Traffic",
    "WorkerSpec",
    "load_specs",
    "rpc_clone",
]
