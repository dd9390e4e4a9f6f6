"""The client kit on its own: its wheel installed alone into a fresh virtual environment (no
worker, no uvloop, Redis, zstandard, rich or prometheus), an example type-checked against it by
mypy, and run there to publish a command that a worker applies."""

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import WorkerHarness
from tests.test_package import ROOT, build_wheel

# What installing the kit may bring: itself, its two dependencies and theirs.
ALLOWED = {
    "session-worker-client",
    "aiokafka",
    "msgspec",
    "async-timeout",
    "packaging",
    "typing-extensions",
    "pip",
    "setuptools",
}

EXAMPLE = textwrap.dedent(
    """
    import os
    import sys

    from contracts.commands import CreateSession
    from contracts.payloads import CreateSessionDTO
    from session_client import SyncCommandPublisher, kafka_connection_from_env, new_command_id


    def main(topic: str, session_id: str) -> None:
        command = CreateSession(
            command_id=new_command_id(),
            org_id="org-42",
            session_id=session_id,
            payload=CreateSessionDTO(name="from a clean venv", expiration_seconds=600),
        )
        with SyncCommandPublisher(kafka_connection_from_env(), topic=topic) as publisher:
            delivery = publisher.publish(command)
        print(f"{delivery.session_id} at offset {delivery.offset}")


    if __name__ == "__main__":
        main(sys.argv[1], sys.argv[2])
    """
)
# The same call with a wrong type: mypy must say so, which it can only if it sees the kit's types.
WRONG = EXAMPLE.replace('org_id="org-42"', "org_id=42")
MYPY_CONFIG = "[mypy]\nstrict = True\n\n[mypy-aiokafka.*]\nignore_missing_imports = True\n"


@pytest.fixture(scope="module")
def kit_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with the kit's wheel and nothing of the worker."""
    home = tmp_path_factory.mktemp("kit-venv")
    wheel = build_wheel(ROOT / "kit", home / "wheel")
    subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True, timeout=120)
    python = home / "venv" / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"), wheel],
        check=True,
        timeout=600,
    )
    return python


def installed(python: Path) -> set[str]:
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.split("==")[0].lower().replace("_", "-") for line in listed.split()}


def test_the_kit_installs_alone_and_light(kit_venv: Path) -> None:
    assert installed(kit_venv) <= ALLOWED
    site = subprocess.run(
        [str(kit_venv), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    worker = subprocess.run(
        [str(kit_venv), "-c", "import worker"], capture_output=True, text=True, cwd=site
    )
    assert worker.returncode == 1
    assert "No module named 'worker'" in worker.stderr


@pytest.mark.parametrize(("source", "ok"), [(EXAMPLE, True), (WRONG, False)], ids=["ok", "wrong"])
def test_mypy_checks_an_example_against_the_installed_kit(
    kit_venv: Path, tmp_path: Path, source: str, ok: bool
) -> None:
    (tmp_path / "example.py").write_text(source)
    (tmp_path / "mypy.ini").write_text(MYPY_CONFIG)
    # Run from a folder outside the checkout: the kit can only be found where it is installed.
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--python-executable", str(kit_venv), "example.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "MYPYPATH"},
    )
    if ok:
        assert checked.returncode == 0, checked.stdout
    else:
        assert checked.returncode == 1, checked.stdout
        assert 'Argument "org_id" to "CreateSession" has incompatible type "int"' in checked.stdout


@pytest.mark.asyncio
async def test_a_command_published_from_the_clean_venv_is_applied(
    kit_venv: Path, tmp_path: Path, harness: WorkerHarness
) -> None:
    harness.start_worker()
    settings = harness.settings
    (tmp_path / "example.py").write_text(EXAMPLE)
    session_id = "s-clean-venv-1"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "PYTHONPATH"))}
    env["KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
    ran = await asyncio.to_thread(
        subprocess.run,
        [str(kit_venv), "example.py", settings.commands_topic, session_id],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith(f"{session_id} at offset ")
    (event,) = await harness.events.wait_count(1)
    body = event.json()
    assert (body["type"], body["sessionId"]) == ("session.created", session_id)
    assert body["session"]["name"] == "from a clean venv"
