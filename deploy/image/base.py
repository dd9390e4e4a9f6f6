"""A Python base image made from Debian's packages, for machines that reach Debian's mirrors but
no container registry (this project's CI among them): mmdebstrap lays out bookworm with Debian's
Python 3.11, and buildah imports the tree as an image.

Both are cached under a key hashed from the recipe below: the tarball in `.cache/images/`, the
image in buildah's local storage (kept between runs on one machine). A changed recipe is a new key,
so nothing stale is used; `make clean` forgets the tarballs, `buildah rmi` the images.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "images"
REPOSITORY = "localhost/session-worker-base"

SUITE = "bookworm"  # the official image's Debian too: the same glibc and Python minor
# What deploy/Dockerfile runs in its base: python3 -m venv (ensurepip comes with python3-venv),
# groupadd/useradd (passwd); ca-certificates for TLS to Kafka and Redis, as the official image.
PACKAGES = ("python3", "python3-venv", "passwd", "ca-certificates")
MIRRORS = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
# Like Debian's own container images: no manuals, documentation or translations (about 90 MB),
# and /usr merged by a hook rather than the usrmerge package, which would pull in Perl.
OPTIONS = (
    "--variant=minbase",
    "--mode=root",
    "--format=tar",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/lintian/*",
    # The runtime provides both; the build machine's must not travel with the image.
    '--customize-hook=rm -f "$1/etc/hostname" "$1/etc/resolv.conf"',
)
# Fixed file times: the same packages give the same tarball, whenever it is made.
SOURCE_DATE_EPOCH = "1700000000"
CONFIG = (
    "--env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "--env=LANG=C.UTF-8",
    "--cmd=/bin/bash",
)


def recipe_key() -> str:
    recipe = [SUITE, PACKAGES, MIRRORS, OPTIONS, SOURCE_DATE_EPOCH, CONFIG, os.uname().machine]
    return hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:12]


def image_name() -> str:
    return f"{REPOSITORY}:{SUITE}-{recipe_key()}"


def tarball() -> Path:
    return CACHE / f"debian-{SUITE}-python3-{recipe_key()}.tar"


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: `make system-deps` installs it")
    return found


def run(*args: str, capture: bool = False, env: dict[str, str] | None = None) -> str:
    """Runs a tool found on PATH, failing on a non-zero exit; its output goes to ours unless
    captured."""
    done = subprocess.run(  # noqa: S603 - our own arguments, no shell
        [tool(args[0]), *args[1:]],
        check=True,
        text=True,
        stdout=subprocess.PIPE if capture else None,
        env=None if env is None else {**os.environ, **env},
    )
    return done.stdout or ""


def succeeds(*args: str, timeout_s: float = 60) -> bool:
    """Whether a tool found on PATH exits 0 (in time); its output is dropped."""
    try:
        done = subprocess.run(  # noqa: S603 - our own arguments, no shell
            [tool(args[0]), *args[1:]], capture_output=True, check=False, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def image_exists(name: str) -> bool:
    return succeeds("buildah", "inspect", "--type", "image", name)


def make_tarball(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial.tar")  # two builds at once: no clash
    packages = ",".join(PACKAGES)
    run(
        *("mmdebstrap", "--quiet", *OPTIONS, f"--include={packages}", SUITE, str(partial)),
        *MIRRORS,
        env={"SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH},
    )
    partial.replace(path)  # complete or absent: an interrupted run leaves no usable tarball


def import_tarball(path: Path, name: str) -> None:
    container = run("buildah", "from", "scratch", capture=True).strip()
    try:
        run("buildah", "add", "--quiet", container, str(path), "/")
        run(
            "buildah",
            "config",
            *CONFIG,
            f"--label=session-worker.base-recipe={recipe_key()}",
            container,
        )
        run("buildah", "commit", "--quiet", container, name)
    finally:
        run("buildah", "rm", container, capture=True)


def ensure_tarball() -> Path:
    """The root filesystem's tarball, made only if the cache has none for this recipe."""
    path = tarball()
    if not path.is_file():
        print(f"making {path.name} with mmdebstrap (about a minute)", file=sys.stderr)
        make_tarball(path)
    return path


def ensure_base() -> str:
    """The base image's name in buildah's storage, imported (from the cached tarball, made if
    need be) only if it is not there yet."""
    name = image_name()
    if not image_exists(name):
        import_tarball(ensure_tarball(), name)
    return name


if __name__ == "__main__":
    print(ensure_base())
