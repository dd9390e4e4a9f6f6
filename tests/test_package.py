"""Two distributions from one tree, and nothing in both: `session-worker-client` (kit/) ships
the contracts and the client kit; `session-worker` ships the worker and depends on the kit at the
same version. The benchmark, the local service launchers, the demo and the dictionary trainer
live in the checkout only, so neither wheel nor the image (which installs both) holds them."""

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VERSION = (ROOT / "VERSION").read_text().strip()
CHECKOUT_ONLY = ("devenv", "bench", "demo.py", "snapshot_training", "tests/")
SHIPS = {
    "session_worker": ("worker/",),
    "session_worker_client": ("contracts/", "session_client/"),
}


def build_wheel(source: Path, into: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(into), str(source)],
        check=True,
        timeout=300,
    )
    (wheel,) = into.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    built = {}
    for source in (ROOT, ROOT / "kit"):
        wheel = build_wheel(source, tmp_path_factory.mktemp("wheel"))
        name, version = wheel.name.split("-")[:2]
        assert version == VERSION, f"{wheel.name}: not the VERSION file's {VERSION}"
        with zipfile.ZipFile(wheel) as archive:
            built[name] = [n for n in archive.namelist() if ".dist-info/" not in n]
    return built


@pytest.mark.parametrize("distribution", SHIPS)
def test_each_wheel_ships_only_its_packages(
    wheels: dict[str, list[str]], distribution: str
) -> None:
    packaged = wheels[distribution]
    assert packaged, "an empty wheel"
    assert [n for n in packaged if not n.startswith(SHIPS[distribution])] == []
    assert [n for n in packaged if any(part in n for part in CHECKOUT_ONLY)] == []


def test_no_file_is_in_both_and_the_runtime_files_are_there(
    wheels: dict[str, list[str]],
) -> None:
    assert set(wheels["session_worker"]) & set(wheels["session_worker_client"]) == set()
    for needed in ("worker/lua/apply.lua", "worker/snapshot_dictionary.zstd", "worker/cli.py"):
        assert needed in wheels["session_worker"]
    for typed in ("session_client/py.typed", "contracts/py.typed"):
        assert typed in wheels["session_worker_client"]


def test_the_worker_depends_on_the_kit_of_its_own_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [d for d in project["dependencies"] if d.startswith("session-worker-client")]
    assert pins == [f"session-worker-client=={VERSION}"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION)


def test_the_check_would_catch_a_launcher() -> None:
    # The rules above must be able to fail: a launcher path is caught by both of them.
    name = "worker/devenv/kafka_local.py"
    assert any(part in name for part in CHECKOUT_ONLY)
    assert not "devenv/kafka_local.py".startswith(SHIPS["session_worker"])
