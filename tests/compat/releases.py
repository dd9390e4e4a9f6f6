"""The recorded fixture sets the current contract must still read (see fixtures/README.md)."""

from pathlib import Path

from contracts.wire import CONTRACT_VERSION

FIXTURES = Path(__file__).parent / "fixtures"


def major(version: str) -> str:
    return version.split(".", 1)[0]


# Every release of the current major; after a major change the older sets stay as history (their
# records live on the old topics) and are no longer required to read.
RELEASES = sorted(
    (d for d in FIXTURES.iterdir() if d.is_dir() and major(d.name) == major(CONTRACT_VERSION)),
    key=lambda d: tuple(int(part) for part in d.name.split(".")),
)
COMMAND_FILES = [p for d in RELEASES for p in sorted((d / "commands").glob("*.json"))]
EVENT_FILES = [p for d in RELEASES for p in sorted((d / "events").glob("*.json"))]


def fixture_id(path: Path) -> str:
    """`0.1.0/create-full`: the release and the file, for test ids."""
    return f"{path.parent.parent.name}/{path.stem}"
