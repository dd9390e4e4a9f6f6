"""`python -m bench.clocked`: the worker, with its clock held still until SIGUSR1.

For the expiry benchmark only. The worker stamps every create it processes while the clock is
held with the same instant (`BENCH_FREEZE_AT_MS`), so a burst of creates with
`expirationSeconds=60` all reach their `expiresAt` in the same millisecond, however long the
burst took to process. SIGUSR1 lets the clock run (real time) from then on; Redis' own TTLs are
real time throughout. Everything else is `session-worker run`, settings from the environment.
"""

import asyncio
import os
import signal
import sys

from worker.app import Worker
from worker.clock import now_ms
from worker.logs import configure_logging
from worker.settings import Settings

FREEZE_ENV = "BENCH_FREEZE_AT_MS"


class HeldClock:
    def __init__(self, at_ms: int) -> None:
        self.at_ms = at_ms
        self.held = True

    def release(self) -> None:
        self.held = False

    def __call__(self) -> int:
        return self.at_ms if self.held else now_ms()


async def _run(settings: Settings, clock: HeldClock) -> None:
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, clock.release)
    await Worker(settings, clock=clock).run()


def main() -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    clock = HeldClock(int(os.environ[FREEZE_ENV]))
    asyncio.run(_run(settings, clock))
    return 0


if __name__ == "__main__":
    sys.exit(main())
