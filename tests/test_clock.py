import asyncio
import time

import pytest

from bookmeta import _clock
from bookmeta._clock import FakeClock


def test_production_defaults_are_the_stdlib_clocks() -> None:
    """Production defaults are time.monotonic, time.time and asyncio.sleep."""
    assert _clock.monotonic is time.monotonic
    assert _clock.wall_clock is time.time
    assert _clock.sleep is asyncio.sleep


def test_fake_clock_reads_and_advances() -> None:
    """A FakeClock returns its time and moves only when advanced."""
    clock = FakeClock(100.0)
    assert clock() == 100.0
    clock.advance(2.5)
    assert clock() == 102.5


def test_fake_clock_refuses_to_go_backwards() -> None:
    """Advancing by a negative amount raises ValueError."""
    with pytest.raises(ValueError, match="backwards"):
        FakeClock().advance(-1)


async def test_fake_sleep_advances_instantly_and_records() -> None:
    """sleep() advances time by the delay and records each delay in order."""
    clock = FakeClock()
    await clock.sleep(1.5)
    await clock.sleep(0.5)
    assert clock() == 2.0
    assert clock.sleeps == [1.5, 0.5]
