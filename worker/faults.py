"""Fault injection for the chaos tests: kill this process at a chosen point, or slow a batch.

Off unless `SW_TEST_CRASH_AT` / `SW_TEST_SLOW_RECORD_MS` are set in the environment (the chaos
suite sets them on worker processes it starts). Read once at import, so the hot path pays one
comparison. A crash is a real SIGKILL: no `finally`, no flush, exactly like `kill -9`.
"""

import asyncio
import os
import signal

# "after_store": Redis holds the batch, its events are not sent yet.
# "after_publish": the events are delivered, the offsets are not committed yet.
_CRASH_AT = os.environ.get("SW_TEST_CRASH_AT", "")
# Crash at the n-th time the point is reached (1 = the first batch).
_CRASH_AFTER = int(os.environ.get("SW_TEST_CRASH_AFTER", "1") or "1")
# Extra handling time per record, to play a handler slower than max.poll.interval.ms allows.
_SLOW_RECORD_S = int(os.environ.get("SW_TEST_SLOW_RECORD_MS", "0") or "0") / 1000

_reached: dict[str, int] = {}


def crash_point(name: str) -> None:
    if name != _CRASH_AT:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] >= _CRASH_AFTER:
        os.kill(os.getpid(), signal.SIGKILL)


async def slow_batch(records: int) -> None:
    if _SLOW_RECORD_S:
        await asyncio.sleep(_SLOW_RECORD_S * records)
