"""Wall-clock helpers: one place that turns epoch milliseconds into the contract's timestamps."""

import time
from datetime import UTC, datetime
from functools import lru_cache


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# A batch stamps all its records with one clock reading: most calls repeat the last few values.
@lru_cache(maxsize=1024)
def iso_ms(epoch_ms: int) -> str:
    """ISO 8601 in UTC with millisecond precision, as Vapi's `createdAt` (`...T12:00:00.000Z`)."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"
