"""The warming queue end to end in the harness: the Queue fake's rules, dead letters,
duplicates, budget deferrals and the cron re-drive."""

from __future__ import annotations

import pytest
from test_warmer_support import (
    AUTH,
    BATCH_CRON,
    WARMER,
    get_json,
    job_units,
    library,
    make_system,
    mock_upstreams,
    upload,
    warm,
)

from harness import DataCloneError, QueueError
from harness.queues import FakeQueue, FakeQueueProducer

QUEUE = "library-warming"


async def test_the_producer_clones_and_checks_like_the_runtime() -> None:
    """A tuple or a custom object does not clone; 128 KB and 12 h are the limits."""
    queue = FakeQueue("q", lambda: 0.0)
    producer = FakeQueueProducer(queue)
    with pytest.raises(TypeError):
        await producer.send({"items": ("a", "b")})
    with pytest.raises(DataCloneError):
        await producer.send({"x": object()})
    with pytest.raises(QueueError):
        await producer.send({"x": "a" * (128 * 1024 + 1)})
    with pytest.raises(QueueError):
        await producer.send({"x": 1}, delaySeconds=43_201)
    with pytest.raises(TypeError):
        await producer.send({"x": 1}, delay=5)
    await producer.send({"x": 1}, delaySeconds=43_200)
    assert queue.bodies() == [{"x": 1}]


async def test_an_upload_is_warm_with_no_cron_fired() -> None:
    """The upload sends one message per unit; the queue alone warms the library."""
    system = make_system(WARM_ISBN_CHUNK="5")
    with mock_upstreams():
        _, summary = await upload(system, library("goodreads_24.csv"))
        assert len(system.queues.by_name[QUEUE].messages) == summary["units"]
        elapsed = await warm(system)
        _, progress = await get_json(system, f"/libraries/{summary['id']}")
    assert progress["percent"] == 100.0
    assert progress["done"] + progress["failed"] == progress["total"] == 24
    assert elapsed < 60.0
    assert system.queues.pending() == 0


async def test_every_message_delivered_twice_counts_once_and_calls_once() -> None:
    """Duplicates on: the second delivery of each unit is acked without a provider call."""
    once = make_system(WARM_ISBN_CHUNK="5")
    with mock_upstreams() as upstreams:
        _, summary = await upload(once, library("goodreads_24.csv"))
        await warm(once)
        single = upstreams.calls()
    twice = make_system(WARM_ISBN_CHUNK="5")
    twice.queues.set_duplicates()
    with mock_upstreams() as upstreams:
        _, summary = await upload(twice, library("goodreads_24.csv"))
        await warm(twice)
        double = upstreams.calls()
        _, progress = await get_json(twice, f"/libraries/{summary['id']}")
    assert double == single
    assert twice.queues.by_name[QUEUE].delivered == 2 * summary["units"]
    assert (progress["done"], progress["failed"], progress["total"]) == (20, 4, 24)


async def test_a_unit_the_queue_gives_up_on_is_failed_with_its_reason() -> None:
    """The consumer throws on every delivery of unit 0 (its object call fails): after
    max_retries the message reaches the dead-letter queue, whose consumer records the
    unit's items as failed, with the reason; the other units warm."""
    system = make_system(WARM_ISBN_CHUNK="100")
    with mock_upstreams():
        _, summary = await upload(system, library("goodreads_24.csv"))
        namespace = system.envs[WARMER].LIBRARY_JOBS

        class Stub:
            def __init__(self, inner: object) -> None:
                self._inner = inner

            def __getattr__(self, name: str) -> object:
                method = getattr(self._inner, name)

                async def call(*args: object) -> object:
                    if name == "claim" and args[0] == 0:
                        raise RuntimeError("Network connection lost.")
                    return await method(*args)

                return call

        class Namespace:
            def getByName(self, name: str) -> Stub:
                return Stub(namespace.getByName(name))

            def __getattr__(self, name: str) -> object:
                return getattr(namespace, name)

        system.envs[WARMER].LIBRARY_JOBS = Namespace()
        await warm(system, within=6 * 3600)
        system.envs[WARMER].LIBRARY_JOBS = namespace
        await warm(system)
        _, progress = await get_json(system, f"/libraries/{summary['id']}")
    queue = system.queues.by_name[QUEUE]
    assert queue.dead_lettered == 1
    assert progress["status"] == "done"
    failed_isbns = [f for f in progress["failures"] if f["unit"] == 0]
    assert len(failed_isbns) == 12
    assert all(f["reason"] == "gave up after repeated deliveries" for f in failed_isbns)
    units = job_units(system, summary["id"])
    assert all(u["status"] == "done" for u in units)


async def test_a_spent_budget_defers_to_the_reset_and_the_queue_resumes_then() -> None:
    """ISBNDB_DAILY_BUDGET=4: units wait for the UTC day to turn (sent again with a delay,
    no attempt counted), the progress names the budget; the next day they warm."""
    system = make_system(WARM_ISBN_CHUNK="10", ISBNDB_DAILY_BUDGET="4")
    with mock_upstreams():
        _, summary = await upload(system, library("goodreads_24.csv"))
        await warm(system, within=3600)
        _, waiting = await get_json(system, f"/libraries/{summary['id']}")
        assert waiting["status"] == "warming"
        assert waiting["lastRun"]["stoppedBy"] == "daily_budget"
        assert waiting["lastRun"]["detail"] == "isbndb"
        for _ in range(8):  # the delayed messages, then each day's budget
            await warm(system, within=86_400)
            await system.scheduled(WARMER, BATCH_CRON)
            _, progress = await get_json(system, f"/libraries/{summary['id']}")
            if progress["status"] == "done":
                break
    assert progress["status"] == "done"
    assert progress["failed"] == 4  # the authors nobody lists, never a budget failure


async def test_the_cron_redrives_a_unit_whose_message_was_lost() -> None:
    """A message lost (queue purged): the unit stays pending; once due, the */15 cron sends
    it again and it warms."""
    system = make_system(WARM_ISBN_CHUNK="100")
    with mock_upstreams():
        _, summary = await upload(system, library("generic.csv"))
        system.queues.by_name[QUEUE].messages.clear()
        await system.scheduled(WARMER, BATCH_CRON)
        assert system.queues.pending() == 0, "not due yet: sent at upload, 30 min ago at most"
        system.clock.advance(1801)
        await system.scheduled(WARMER, BATCH_CRON)
        assert system.queues.pending() == 3
        await warm(system)
        _, progress = await get_json(system, f"/libraries/{summary['id']}")
        resp = await system.fetch(
            WARMER, f"/libraries/{summary['id']}/warm", method="POST", headers=AUTH
        )
        assert resp.status == 200
    assert progress["percent"] == 100.0
