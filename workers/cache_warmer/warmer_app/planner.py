"""Pure batch planning: a library becomes work units; a run takes the units its budgets allow.

A unit is a chunk of ISBNs (one ``warm_isbns`` RPC) or one distinct author (ISBNdb
``/author/{name}`` plus the proxy's ``/search/auto``). Costs, on our side of the bindings:

======================  ===========================================================
ISBN chunk              2 subrequests: the RPC, the unit's result key in KV (another
                        RPC per further attempt when the proxy deferred some ISBNs)
author                  3 subrequests: two fetches, the unit's result key in KV
per job worked          10: state get, plan get (R2), catch-up probe (>= 1 get),
                        lease get/put/confirm get, release get/put, state put, and one
                        usage record put covering the job's units before they run
per run                 3: job list, daily usage list, daily usage put (the settled record)
======================  ===========================================================

Upstream calls (for the daily provider budgets) are estimated pessimistically per unit (per
attempt: for the items still to do); the proxy reports its real counts for ISBN chunks and
those replace the estimate once known.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

ISBN_UNIT_SUBREQUESTS = 2
AUTHOR_UNIT_SUBREQUESTS = 3
JOB_SUBREQUESTS = 10
JOB_END_SUBREQUESTS = 3  # release get/put + state put, reserved while working a job
USAGE_COVER_SUBREQUESTS = 1  # a usage record put before the calls it counts (budget.UsageLedger)
RUN_SUBREQUESTS = 3
RUN_END_SUBREQUESTS = 1  # the daily usage put
ISBNDB_BULK_MAX = 100
OPEN_LIBRARY_BATCH_MAX = 50


class UnitKind(StrEnum):
    """What a unit warms."""

    ISBNS = "isbns"
    AUTHOR = "author"


@dataclass(frozen=True, slots=True)
class Unit:
    """One step of a warming job: ISBN-13s, or a single author name."""

    kind: UnitKind
    items: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON-able form (stored in the plan)."""
        return {"kind": self.kind.value, "items": list(self.items)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Unit:
        """Inverse of to_json."""
        return cls(UnitKind(data["kind"]), tuple(str(i) for i in data["items"]))

    @property
    def subrequests(self) -> int:
        """Subrequests this unit costs (see the module docstring)."""
        return ISBN_UNIT_SUBREQUESTS if self.kind is UnitKind.ISBNS else AUTHOR_UNIT_SUBREQUESTS


def build_units(isbns: Sequence[str], authors: Iterable[str], *, chunk_size: int) -> list[Unit]:
    """ISBN chunks of ``chunk_size`` first (the books themselves), then one unit per author."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    units = [
        Unit(UnitKind.ISBNS, tuple(isbns[i : i + chunk_size]))
        for i in range(0, len(isbns), chunk_size)
    ]
    units.extend(Unit(UnitKind.AUTHOR, (name,)) for name in authors)
    return units


# The proxy's warm_isbns asks Google about at most this many ISBNs per call (its
# MAX_GOOGLE_PER_CALL); the rest come back as failed and are retried by a later run.
PROXY_GOOGLE_PER_CALL = 20


KV_WRITES_PER_ITEM = 2  # the proxy's cache entry + the isbndb worker's shared copy


def upstream_estimate(unit: Unit) -> dict[str, int]:
    """Worst-case upstream calls for ``unit``, per provider.

    ISBN chunk: one ISBNdb bulk call per 100, one Open Library batch per 50 and, at worst, one
    Google search per ISBN up to the proxy's cap per ``warm_isbns`` call. Author: ISBNdb
    twice at worst (direct, then through the proxy's author search when the isbndb worker's
    LRU does not answer it), Google and Open Library once each (``inauthor:`` searches are
    never retried as title searches).

    ``kv_writes``: the KV writes warming the unit causes at worst: per ISBN, the proxy's cache
    entry and the isbndb worker's shared copy of the book; per author, the proxy's search entry
    and the isbndb worker's author page.
    """
    if unit.kind is UnitKind.ISBNS:
        n = len(unit.items)
        return {
            "isbndb": math.ceil(n / ISBNDB_BULK_MAX),
            "openlibrary": math.ceil(n / OPEN_LIBRARY_BATCH_MAX),
            "google": min(n, PROXY_GOOGLE_PER_CALL),
            "kv_writes": KV_WRITES_PER_ITEM * n,
        }
    return {"isbndb": 2, "google": 1, "openlibrary": 1, "kv_writes": KV_WRITES_PER_ITEM}


def total_estimate(units: Iterable[Unit]) -> dict[str, int]:
    """Summed worst-case upstream calls of ``units``."""
    out = {"isbndb": 0, "google": 0, "openlibrary": 0, "kv_writes": 0}
    for unit in units:
        for provider, n in upstream_estimate(unit).items():
            out[provider] += n
    return out


class StopReason(StrEnum):
    """Why a batch ends where it does."""

    COMPLETE = "complete"
    SUBREQUESTS = "subrequests"
    DAILY_BUDGET = "daily_budget"
    TIME = "time"
    TRANSIENT = "transient_error"
    BUSY = "busy"


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """Unit indices to run, in order, and why the plan stops after them."""

    indices: list[int]
    stop: StopReason
    detail: str = ""


def plan_batch(
    units: Sequence[Unit],
    start: int,
    *,
    subrequests: int,
    daily_left: Mapping[str, int],
) -> BatchPlan:
    """Take units from ``start`` while both the subrequest and the daily budgets cover them.

    ``subrequests`` is what the run may still spend on units (end-of-run writes already
    reserved). Units are never skipped: the batch stops at the first that does not fit.
    """
    left = dict(daily_left)
    spend = subrequests
    indices: list[int] = []
    for n in range(start, len(units)):
        unit = units[n]
        blocked = blocker(unit, subrequests=spend, daily_left=left)
        if blocked is not None:
            return BatchPlan(indices, *blocked)
        spend -= unit.subrequests
        for provider, c in upstream_estimate(unit).items():
            left[provider] = left.get(provider, 0) - c
        indices.append(n)
    return BatchPlan(indices, StopReason.COMPLETE)


def blocker(
    unit: Unit, *, subrequests: int, daily_left: Mapping[str, int]
) -> tuple[StopReason, str] | None:
    """Why ``unit`` (its items still to do) cannot run now, or None when both budgets cover it."""
    if unit.subrequests > subrequests:
        return StopReason.SUBREQUESTS, f"{max(0, subrequests)} subrequests left"
    short = [p for p, c in upstream_estimate(unit).items() if c > daily_left.get(p, 0)]
    if short:
        return StopReason.DAILY_BUDGET, ", ".join(sorted(short))
    return None
