"""The benchmarks' size flags: `--<size>` for each tunable, defaults and `--quick` values in the
help, and the chosen values back as a `Config`'s keyword arguments."""

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

Size = tuple[str, type, str]  # field name, its type, what it is


def add_size_flags(
    parser: argparse.ArgumentParser,
    sizes: Sequence[Size],
    defaults: object,
    quick: Mapping[str, object],
) -> None:
    parser.add_argument("--quick", action="store_true", help="small sizes: about 2 minutes")
    for name, kind, text in sizes:
        default = getattr(defaults, name)
        fmt = "" if name == "seed" else ","
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=kind,
            help=f"{text} (default {default:{fmt}}; --quick: {quick.get(name, default):{fmt}})",
        )


def chosen(args: argparse.Namespace, config: type, quick: Mapping[str, object]) -> dict[str, Any]:
    """The `--quick` sizes when asked, then every flag given, and `quick` itself."""
    values: dict[str, Any] = dict(quick) if args.quick else {}
    for f in dataclasses.fields(config):
        given = getattr(args, f.name, None)
        if given is not None and given is not False:
            values[f.name] = given
    values["quick"] = bool(args.quick)
    return values


def check_positive(
    parser: argparse.ArgumentParser, sizes: Sequence[Size], cfg: object, *, except_: Sequence[str]
) -> None:
    for name, _, _ in sizes:
        if name not in except_ and getattr(cfg, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
