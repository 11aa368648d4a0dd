"""The attempt policy of a unit (warmer_app.attempts): pure, so a queue consumer can share it."""

from __future__ import annotations

import json

from warmer_app.attempts import MAX_TRIES, Attempt, UnitProgress
from warmer_app.planner import Unit, UnitKind

UNIT = Unit(UnitKind.ISBNS, ("a", "b", "c", "d"))


def test_a_deferral_is_progress_not_an_attempt() -> None:
    """Deferred items spend no try, stay to do, and are sent before settled ones never are."""
    progress = UnitProgress(0)
    step = progress.record(Attempt(done=["a"], failed={"b": "not found"}, deferred=["c", "d"]))
    assert (step.progress, step.trouble) == (True, None)
    assert progress.todo(UNIT) == ["c", "d"]
    assert progress.tries == {}
    assert not progress.finished(UNIT)


def test_an_item_gives_up_only_after_its_own_tries() -> None:
    """Each item counts the attempts that asked it and failed; deferrals do not count."""
    progress = UnitProgress(0)
    for _ in range(MAX_TRIES - 1):
        step = progress.record(Attempt(retry={"a": "google: 500"}, deferred=["b", "c", "d"]))
        assert step.trouble == "google: 500"
        assert not step.progress
    progress.record(Attempt(retry={"a": "google: 500"}, done=["b", "c", "d"]))
    assert progress.finished(UNIT)
    done, failed = progress.outcome(UNIT)
    assert done == ["b", "c", "d"]
    assert failed == [{"item": "a", "reason": "gave up after 3 attempts: google: 500"}]


def test_a_failed_call_counts_a_try_for_every_item_sent() -> None:
    """A call that failed as a whole (binding threw, 5xx) asked every item it carried."""
    progress = UnitProgress(0)
    for _ in range(MAX_TRIES):
        progress.record(Attempt.failed_call(progress.todo(UNIT), "RuntimeError: lost"))
    assert progress.finished(UNIT)
    _, failed = progress.outcome(UNIT)
    assert [f["item"] for f in failed] == ["a", "b", "c", "d"]
    assert all(f["reason"] == "gave up after 3 attempts: RuntimeError: lost" for f in failed)


def test_an_item_missing_from_the_answer_is_retried() -> None:
    """An item sent but absent from every list was not answered: it spends a try."""
    progress = UnitProgress(0)
    step = progress.record(Attempt(done=["a", "b", "c"]), sent=["a", "b", "c", "d"])
    assert step.trouble == "d: missing from the result"
    assert progress.tries == {"d": 1}


def test_settled_items_are_never_sent_again_and_never_counted_twice() -> None:
    """An item settled once keeps its first verdict."""
    progress = UnitProgress(0)
    progress.record(Attempt(failed={"a": "not found"}))
    progress.record(Attempt(done=["a", "b", "c", "d"]))
    done, failed = progress.outcome(UNIT)
    assert (done, failed) == (["b", "c", "d"], [{"item": "a", "reason": "not found"}])
    assert progress.todo(UNIT) == []


def test_progress_round_trips_through_json() -> None:
    """The state survives the job's KV record between runs."""
    progress = UnitProgress(3)
    progress.record(
        Attempt(done=["a"], retry={"b": "x"}, deferred=["c"], upstream={"google": 2}),
    )
    again = UnitProgress.from_json(json.loads(json.dumps(progress.to_json())))
    assert again == progress
    assert again.upstream == {"google": 2}
