"""Sending units to the warming queue: at upload, on retry, after verification, and by the cron.

Units go in batches of up to 100 messages (one ``sendBatch`` subrequest each). After a send
the object marks them not due for ``REDRIVE_AFTER_S``, so the next cron does not send them
again while the queue still holds them; a unit still unsettled after that (its consumer died,
a send was lost, a budget deferral longer than the queue's 12 h delay) is due again and the
``*/15`` cron sends it once more. A duplicate costs nothing but queue operations: the object
refuses a second lease and counts a result once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bookmeta import QueueProducer

from .budget import Meter
from .consumer import unit_message
from .jobs import JobStore

SEND_BATCH_MAX = 100
REDRIVE_AFTER_S = 1800.0
# Units sent at upload: at most this many batches in the upload's own invocation (its
# subrequests are limited); the rest are due at once and the cron sends them.
UPLOAD_MAX_BATCHES = 20
DUE_PER_JOB = 200
JOB_SUBREQUESTS = 4  # due, up to two sendBatch, redriven


async def enqueue_units(
    store: JobStore,
    queue: QueueProducer,
    job_id: str,
    units: Iterable[int],
    *,
    max_batches: int = UPLOAD_MAX_BATCHES,
) -> int:
    """Send ``units`` of ``job_id`` to the queue (at most ``max_batches`` sends); returns
    how many were sent. Those are marked as sent in the job's object."""
    todo = list(units)
    sent: list[int] = []
    for start in range(0, len(todo), SEND_BATCH_MAX):
        if start // SEND_BATCH_MAX >= max_batches:
            break
        chunk = todo[start : start + SEND_BATCH_MAX]
        await queue.send_batch([unit_message(job_id, n) for n in chunk])
        sent.extend(chunk)
    if sent:
        await store.redriven(job_id, sent, REDRIVE_AFTER_S)
    return len(sent)


async def redrive(
    store: JobStore, queue: QueueProducer, job_ids: list[str], meter: Meter, *, now: bool = False
) -> list[dict[str, Any]]:
    """Send every job's due units again (while the subrequest budget lasts); ``now``: every
    pending unit not leased, due or not (POST /libraries/{id}/warm)."""
    out: list[dict[str, Any]] = []
    for job_id in job_ids:
        if meter.remaining < JOB_SUBREQUESTS:
            out.append({"id": job_id, "stoppedBy": "subrequests"})
            break
        due = await store.due(job_id, DUE_PER_JOB, now_too=now)
        sent = await enqueue_units(store, queue, job_id, due, max_batches=2) if due else 0
        if sent or now:
            out.append({"id": job_id, "redriven": sent})
    return out
