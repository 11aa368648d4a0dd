"""In-process Workers harness: strict fakes of KV, R2, service bindings, context and cron."""

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
from .storage import FakeKV, FakeR2, KVError, R2Error
from .system import System, WorkerSpec, load_specs

__all__ = [
    "DataCloneError",
    "FakeContext",
    "FakeController",
    "FakeKV",
    "FakeR2",
    "FakeRateLimit",
    "FakeSecret",
    "FakeServiceBinding",
    "KVError",
    "R2Error",
    "System",
    "Traffic",
    "WorkerSpec",
    "load_specs",
    "rpc_clone",
]
