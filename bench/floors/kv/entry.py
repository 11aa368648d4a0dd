"""Floor of the workerd bench: the smallest Python Worker answering one KV value.

``GET /<key>`` answers the value of ``<key>`` in the ``CACHE`` namespace as it is stored (an
empty body when absent); ``PUT /<key>`` stores the request body there. The bench seeds it with
the proxy's answers to the same searches, so both sides move the same bytes.
"""

from workers import Response, WorkerEntrypoint

HEADERS = {"content-type": "application/json"}


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        key = request.url.rpartition("/")[2]
        if request.method == "PUT":
            await self.env.CACHE.put(key, await request.text())
            return Response("stored")
        return Response(await self.env.CACHE.get(key), headers=HEADERS)
