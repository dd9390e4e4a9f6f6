"""Where the machine's cores went during a phase: the CPU time of each process taking part.

The benchmark's machine runs the broker, Redis, the benchmark process (load generator, ceiling
and floor) and the worker at once. What one of them gets, in rate and in latency, depends on
what the others take, so each phase records the CPU time of all of them, not only the worker's.
Read from /proc/<pid>/stat: a service in a container or on another host has no pid here and is
left out (its column reads n/a).
"""

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

from bench.procs import cpu_seconds

# Columns of the report, in order. "benchmark" is this process: the load generator, and the
# ceiling and floor, which run in it.
ROLES = ("worker", "benchmark", "broker", "Redis")


@dataclass(frozen=True)
class CpuUse:
    """CPU time each process used over one phase, and what the phase got done."""

    wall_s: float
    cpu_s: Mapping[str, float]  # role -> CPU seconds over the phase; measured roles only
    items: int  # commands (or records) the phase handled

    def cores(self, role: str) -> float:
        """Cores the role kept busy on average; NaN when it was not measured."""
        used = self.cpu_s.get(role)
        if used is None or self.wall_s <= 0:
            return math.nan
        return used / self.wall_s

    def us_per_item(self, role: str) -> float:
        used = self.cpu_s.get(role)
        if used is None or self.items <= 0:
            return math.nan
        return used / self.items * 1e6

    @property
    def total_cores(self) -> float:
        return sum(self.cpu_s.values()) / self.wall_s if self.wall_s > 0 else math.nan


@dataclass(frozen=True)
class Mark:
    t: float  # monotonic seconds
    cpu_s: Mapping[str, float]


class CpuMeter:
    """Marks the CPU time of named processes, and turns two marks into a `CpuUse`."""

    def __init__(self, pids: Mapping[str, int | None]) -> None:
        self._pids = {role: pid for role, pid in pids.items() if pid is not None}

    def with_process(self, role: str, pid: int) -> "CpuMeter":
        return CpuMeter({**self._pids, role: pid})

    def mark(self) -> Mark:
        return Mark(time.monotonic(), self._read())

    def since(self, start: Mark, items: int) -> CpuUse:
        now = self._read()
        # A process gone since the mark (or not yet there) tells nothing about the phase.
        used = {role: now[role] - start.cpu_s[role] for role in now if role in start.cpu_s}
        return CpuUse(time.monotonic() - start.t, used, items)

    def _read(self) -> dict[str, float]:
        values = {role: cpu_seconds(pid) for role, pid in self._pids.items()}
        return {role: value for role, value in values.items() if value is not None}
