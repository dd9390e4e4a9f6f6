"""`write` or `check` for files generated from the contract Structs (the JSON Schemas, the
AsyncAPI document): one command line, so both tools say the same things the same way."""

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def shown(path: Path) -> str:
    """The path relative to the working directory when it lies below it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def write_or_check(
    argv: Sequence[str] | None,
    *,
    module: str,
    what: str,
    option: str,
    default: Path,
    write: Callable[[Path], list[Path]],
    stale: Callable[[Path], list[Path]],
    up_to_date: str,
) -> int:
    """`python -m <module> write|check [--<option> PATH]`; `check` exits 1 naming each file that
    is missing or out of date."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=f"Write or check {what} generated from the contract Structs.",
    )
    parser.add_argument("action", choices=("write", "check"))
    parser.add_argument(f"--{option}", type=Path, default=default, help="default: %(default)s")
    args = parser.parse_args(argv)
    target: Path = getattr(args, option)
    if args.action == "write":
        for path in write(target):
            print(f"wrote {shown(path)}")
        return 0
    out_of_date = stale(target)
    for path in out_of_date:
        problem = "is out of date with the contract Structs" if path.exists() else "is missing"
        print(
            f"{shown(path)} {problem}; run `python -m {module} write` and commit the result",
            file=sys.stderr,
        )
    if out_of_date:
        return 1
    print(up_to_date)
    return 0
