"""RPC arity: the runtime calls a method with whatever positional arguments the caller sent.

A Python ``TypeError`` for a wrong argument count would cross the binding as a bare JS error,
while an RPC method must return its error dict (ARCHITECTURE.md). So RPC methods give every
parameter a default of None (a missing argument then fails validation like a bad one) and
collect surplus arguments in ``*extra``, checked here.
"""

from __future__ import annotations

from typing import Any

from ._errors import InvalidInput


def refuse_extra_args(method: str, extra: tuple[Any, ...], accepted: int) -> None:
    """Raise InvalidInput("args") when an RPC call passed arguments beyond ``accepted``."""
    if extra:
        noun = "argument" if accepted == 1 else "arguments"
        raise InvalidInput(
            "args", f"{method} takes at most {accepted} {noun}, got {accepted + len(extra)}"
        )
