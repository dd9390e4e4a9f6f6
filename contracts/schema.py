"""JSON Schema (draft 2020-12) of the wire types, generated from the Structs.

The Structs are the source of truth; ``contracts/schemas/*.schema.json`` are checked-in copies for
producers and consumers that do not run Python. ``python -m contracts.schema write`` regenerates
them, ``python -m contracts.schema check`` fails when they are stale. Importing this module does
no I/O: files are read and written only by the CLI functions.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from contracts.commands import Command
from contracts.events import Event
from contracts.generated import write_or_check

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIR = Path(__file__).parent / "schemas"  # a path only; nothing is read at import


@dataclass(frozen=True, slots=True)
class SchemaDocument:
    """One published schema: the union it describes and where its checked-in copy lives."""

    file_name: str
    schema_id: str
    title: str
    root: object  # a type msgspec can describe, here a tagged union of Structs
    # Events may gain fields within a contract version and readers ignore what they do not know,
    # so their schema must accept unknown fields; commands stay strict, as Vapi's schema is.
    open_for_additions: bool = False


DOCUMENTS: tuple[SchemaDocument, ...] = (
    SchemaDocument(
        "commands.schema.json",
        "urn:session-worker:commands",
        "Session worker command (sessions.commands record value)",
        Command,
    ),
    SchemaDocument(
        "events.schema.json",
        "urn:session-worker:events",
        "Session worker lifecycle event (sessions.events record value)",
        Event,
        open_for_additions=True,
    ),
)


def build(document: SchemaDocument) -> dict[str, Any]:
    """The schema as a dict: msgspec's union (with its discriminator) at the root, `$defs` below."""
    (root,), definitions = msgspec.json.schema_components(
        (document.root,), ref_template="#/$defs/{name}"
    )
    built = {
        "$schema": DIALECT,
        "$id": document.schema_id,
        "title": document.title,
        "description": OPEN_NOTE if document.open_for_additions else STRICT_NOTE,
        **root,
        "$defs": definitions,
    }
    return open_for_additions(built) if document.open_for_additions else built


OPEN_NOTE = (
    "Open for additions: within a contract version events may gain fields, so any object may "
    "carry properties not listed here; readers ignore fields (and skip event types) they do "
    "not know."
)
STRICT_NOTE = (
    "Strict: a command with a field the contract does not define is rejected (`invalid`), as "
    "Vapi's schema rejects it."
)


def open_for_additions(node: Any) -> Any:
    """`node` without any `additionalProperties: false` (msgspec writes one for every Struct
    that forbids unknown fields, which the worker's own Structs do)."""
    if isinstance(node, dict):
        return {
            k: open_for_additions(v)
            for k, v in node.items()
            if not (k == "additionalProperties" and v is False)
        }
    if isinstance(node, list):
        return [open_for_additions(item) for item in node]
    return node


def render(document: SchemaDocument) -> str:
    """The exact text of the checked-in file: sorted keys, two-space indent, trailing newline."""
    return json.dumps(build(document), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Rewrites every schema file under `directory`; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for document in DOCUMENTS:
        path = directory / document.file_name
        path.write_text(render(document), encoding="utf-8", newline="\n")
        written.append(path)
    return written


def stale(directory: Path = SCHEMA_DIR) -> list[Path]:
    """The schema files under `directory` that are missing or differ from what the Structs give."""
    out_of_date = []
    for document in DOCUMENTS:
        path = directory / document.file_name
        try:
            current = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current != render(document):
            out_of_date.append(path)
    return out_of_date


def main(argv: Sequence[str] | None = None) -> int:
    return write_or_check(
        argv,
        module="contracts.schema",
        what="the JSON Schema files",
        option="dir",
        default=SCHEMA_DIR,
        write=write,
        stale=stale,
        up_to_date=f"schema files are up to date ({len(DOCUMENTS)} checked)",
    )


if __name__ == "__main__":
    raise SystemExit(main())
