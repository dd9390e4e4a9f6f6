"""The wheel (and so the image, which installs it) holds what runs in production and what
operators type: the `worker` and `contracts` packages. The benchmark, the local service
launchers, the demo and the dictionary trainer live in the checkout only."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("worker/", "contracts/")
CHECKOUT_ONLY = ("devenv", "bench", "demo.py", "snapshot_training", "tests/")


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = out.glob("session_worker-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_ships_only_the_worker_and_the_contracts(wheel_files: list[str]) -> None:
    packaged = [name for name in wheel_files if ".dist-info/" not in name]
    assert packaged, "an empty wheel"
    assert [name for name in packaged if not name.startswith(SHIPPED)] == []
    crept_in = [name for name in packaged if any(part in name for part in CHECKOUT_ONLY)]
    assert crept_in == []
    # What the worker needs at run time is there: its scripts and dictionaries.
    for needed in ("worker/lua/apply.lua", "worker/snapshot_dictionary.zstd", "worker/cli.py"):
        assert needed in packaged


def test_the_check_would_catch_a_launcher() -> None:
    # The test above must be able to fail: a launcher path is caught by both of its rules.
    name = "worker/devenv/kafka_local.py"
    assert any(part in name for part in CHECKOUT_ONLY)
    assert not "devenv/kafka_local.py".startswith(SHIPPED)
