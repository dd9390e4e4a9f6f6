"""The benchmark: `python -m worker.bench` (`make bench`, `session-worker bench`).

See `worker.bench.runner` for what is measured and how. `main(argv)` is the entry point.
"""

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from worker.bench.runner import main as run_main

    return run_main(argv)
