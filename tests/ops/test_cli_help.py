"""Every command explains itself."""

from pathlib import Path

import pytest

from worker.cli import build_parser, main
from worker.session_record import RECORD_FORMAT

COMMANDS = ["run", "topics", "publish", "tail", "get", "dlq", "check"]


@pytest.mark.parametrize("argv", [[c, "--help"] for c in COMMANDS] + [["dlq", "replay", "--help"]])
def test_every_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 0
    assert f"usage: session-worker {' '.join(argv[:-1])}" in capsys.readouterr().out


def test_checkout_tools_are_not_operator_commands(capsys: pytest.CaptureFixture[str]) -> None:
    # The demo and the benchmark need a checkout (local services, matplotlib, py-spy): they run
    # from make (`make dev`, `make bench`), not from the image's `session-worker`.
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    listed = capsys.readouterr().out
    for tool in ("bench", "dev"):
        assert f"    {tool} " not in listed
        with pytest.raises(SystemExit) as exited:
            main([tool])
        assert exited.value.code == 2


def test_version_prints_the_release_and_the_record_format(
    capsys: pytest.CaptureFixture[str],
) -> None:
    release = (Path(__file__).resolve().parents[2] / "VERSION").read_text(encoding="utf-8").strip()
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    printed = capsys.readouterr().out
    assert printed == f"session-worker {release} (record format {RECORD_FORMAT})\n", (
        f"VERSION says {release}: an older install? `make install` reinstalls"
    )
