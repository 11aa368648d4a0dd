"""The nightly sweep of the cold tier: R2 keeps cache entries until deleted, so entries past
their cold TTL are deleted here, a few list pages per night, resuming where the last night
stopped (the R2 list cursor is kept in KV). The warmer's 02:00 cron calls it over RPC.
"""

from __future__ import annotations

import json
from typing import Any

from bookmeta import TwoTierCache

CURSOR_KEY = "sweep:cold-cursor"
CURSOR_TTL_S = 8 * 86_400  # a cursor unused for a week restarts the walk


async def sweep_cache(cache: TwoTierCache, max_pages: int) -> dict[str, Any]:
    """Delete expired cold entries from where the last sweep stopped; report what it did.

    Costs at most ``2 * max_pages`` R2 operations and two KV operations (the cursor).
    """
    kv = cache.hot
    cursor = await kv.get(CURSOR_KEY) if kv is not None else None
    try:
        report = await cache.sweep_expired(cursor=cursor, max_pages=max_pages)
    except Exception as exc:
        if cursor is None:
            raise
        # A cursor R2 no longer accepts: start the walk again from the beginning.
        print(json.dumps({"level": "warning", "event": "sweep.cursor_refused", "error": repr(exc)}))
        cursor = None
        report = await cache.sweep_expired(max_pages=max_pages)
    if kv is not None:
        if report.cursor is not None:
            await kv.put(CURSOR_KEY, report.cursor, ttl_s=CURSOR_TTL_S)
        elif cursor is not None:
            await kv.delete(CURSOR_KEY)
    return {"scanned": report.scanned, "deleted": report.deleted, "complete": report.cursor is None}
