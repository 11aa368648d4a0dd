"""Floor of the workerd bench: one KV value for a caller counted by a Rate Limiting binding.

``GET /<key>`` counts the caller (``CF-Connecting-IP``) with ``LIMIT.limit`` while it reads
``<key>`` from ``CACHE`` (both at once, as the proxy does), then answers the value, or 429 when
the count refused it; ``PUT /<key>`` stores the request body. The least a public hit costs
when every request is counted across isolates.
"""

import asyncio

from workers import Response, WorkerEntrypoint

HEADERS = {"content-type": "application/json"}


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        key = request.url.rpartition("/")[2]
        if request.method == "PUT":
            await self.env.CACHE.put(key, await request.text())
            return Response("stored")
        ip = request.headers.get("cf-connecting-ip") or ""
        outcome, value = await asyncio.gather(self.env.LIMIT.limit(key=ip), self.env.CACHE.get(key))
        if not outcome.success:
            return Response("limited", status=429)
        return Response(value, headers=HEADERS)
