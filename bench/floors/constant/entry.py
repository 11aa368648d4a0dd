"""Floor of the workerd bench: the smallest Python Worker, answering a constant."""

from workers import Response, WorkerEntrypoint

BODY = '{"ok":true}'
HEADERS = {"content-type": "application/json"}


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response(BODY, headers=HEADERS)
