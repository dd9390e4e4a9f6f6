"""The benchmark: `make bench` (`python -m bench` from a checkout; not in the package).

See `bench.runner` for what is measured and how. `main(argv)` is the entry point.
"""

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from bench.runner import main as run_main

    return run_main(argv)
