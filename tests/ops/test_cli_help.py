"""Every command explains itself."""

import pytest

from worker.cli import build_parser, main

COMMANDS = ["run", "dev", "topics", "publish", "tail", "get", "dlq", "check"]


@pytest.mark.parametrize("argv", [[c, "--help"] for c in COMMANDS] + [["dlq", "replay", "--help"]])
def test_every_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 0
    assert f"usage: session-worker {' '.join(argv[:-1])}" in capsys.readouterr().out


def test_bench_passes_its_own_flags_through(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    assert "bench" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    assert "--quick" in capsys.readouterr().out
