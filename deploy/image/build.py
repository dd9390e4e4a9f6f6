"""Builds deploy/Dockerfile as `session-worker:<version>` (the version from the VERSION file): what
`make image` runs, as `python -m deploy.image.build [--base IMAGE]`.

With a Docker engine that answers, `docker build`; otherwise buildah, which needs no daemon
(chroot isolation, as root). The base: the Dockerfile's default (the official Python slim image)
when it is present or can be pulled, otherwise the one made here from Debian's packages
(deploy/image/base.py). `--base debian` forces that one; any other value is used as is.
"""

import argparse
import configparser
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from deploy.image import base

ROOT = base.ROOT
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
IGNOREFILE = ROOT / "deploy" / "Dockerfile.dockerignore"
DEBIAN_BASE = "debian"  # --base value: the base made from Debian's packages
PULL_TIMEOUT_S = 120
# Where pip is told to find the CA bundle it trusts (a TLS-inspecting proxy's, say), in pip's order.
PIP_CONFIG_FILES = (
    "/etc/pip.conf",
    "/etc/xdg/pip/pip.conf",
    "~/.pip/pip.conf",
    "~/.config/pip/pip.conf",
)


def project_version() -> str:
    """The release: the VERSION file, which pyproject.toml, the client kit and the
    kustomization's image tag all follow."""
    return (ROOT / "VERSION").read_text(encoding="utf-8").strip()


def image_tag() -> str:
    return f"session-worker:{project_version()}"


def default_base() -> str:
    """The Dockerfile's own default for PYTHON_IMAGE: one place says which image users get."""
    found = re.search(r"^ARG PYTHON_IMAGE=(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"{DOCKERFILE}: no `ARG PYTHON_IMAGE=` default")
    return found.group(1)


def pip_ca_bundle() -> Path | None:
    """The CA bundle this machine's pip is told to trust, if any: the build's pip gets the same
    (as a build secret, so it reaches no layer), or it could not reach PyPI from where this one
    can."""
    for variable in ("PIP_CERT", "REQUESTS_CA_BUNDLE"):
        if os.environ.get(variable):
            return Path(os.environ[variable])
    config = configparser.ConfigParser()
    config.read([os.path.expanduser(name) for name in PIP_CONFIG_FILES])
    cert = config.get("global", "cert", fallback=None)
    return Path(cert) if cert else None


def docker_answers() -> bool:
    try:
        return base.succeeds("docker", "info", timeout_s=15)
    except RuntimeError:  # no docker client
        return False


def resolve_base(requested: str, engine: str) -> str | None:
    """The PYTHON_IMAGE build argument to pass; None keeps the Dockerfile's default."""
    if requested and requested != DEBIAN_BASE:
        return requested
    if not requested:
        official = default_base()
        if engine == "docker":
            present = base.succeeds("docker", "image", "inspect", official)
            pulled = present or base.succeeds("docker", "pull", official, timeout_s=PULL_TIMEOUT_S)
        else:
            qualified = official if "/" in official else f"docker.io/library/{official}"
            present = base.image_exists(qualified)
            pulled = present or base.succeeds(
                "buildah", "pull", qualified, timeout_s=PULL_TIMEOUT_S
            )
            official = qualified
        if pulled:
            return None if engine == "docker" else official
        print(
            f"{official} cannot be pulled: using a base made from Debian's packages",
            file=sys.stderr,
        )
    if engine == "docker":
        name = base.image_name()
        if not base.succeeds("docker", "image", "inspect", name):
            tarball = base.ensure_tarball()
            base.run("docker", "import", *docker_changes(), str(tarball), name)
        return name
    return base.ensure_base()


def docker_changes() -> list[str]:
    """base.CONFIG (buildah config flags) as Dockerfile instructions for `docker import`."""
    changes = []
    for flag in base.CONFIG:
        key, value = flag.removeprefix("--").split("=", 1)
        changes += ["--change", f"{key.upper()} {value}"]
    return changes


def build(requested_base: str = "", engine: str = "") -> str:
    """Builds the image and returns its tag. Layers are cached: an unchanged tree rebuilds in
    seconds."""
    engine = engine or ("docker" if docker_answers() else "buildah")
    tag = image_tag()
    python_image = resolve_base(requested_base, engine)
    args = ["--file", str(DOCKERFILE), "--tag", tag]
    if python_image is not None:
        args.append(f"--build-arg=PYTHON_IMAGE={python_image}")
    ca_bundle = pip_ca_bundle()
    if ca_bundle is not None and ca_bundle.is_file():
        args.append(f"--secret=id=pip-ca,src={ca_bundle}")
    started = time.monotonic()
    if engine == "docker":
        # BuildKit reads deploy/Dockerfile.dockerignore by itself, next to the Dockerfile.
        base.run("docker", "build", *args, str(ROOT))
    else:
        base.run(
            "buildah",
            "build",
            "--isolation=chroot",
            "--layers",
            "--format=docker",
            f"--ignorefile={IGNOREFILE}",
            *args,
            str(ROOT),
        )
    print(
        f"built {tag} with {engine} in {time.monotonic() - started:.0f} s "
        f"(base: {python_image or default_base()})",
        file=sys.stderr,
    )
    return tag


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.image.build",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--base",
        default="",
        metavar="IMAGE",
        help="PYTHON_IMAGE: empty for the default (or, when it cannot be "
        f"pulled, the Debian-made base), {DEBIAN_BASE!r} for that one",
    )
    parser.add_argument(
        "--engine",
        choices=("docker", "buildah"),
        default="",
        help="default: docker if an engine answers, otherwise buildah",
    )
    options = parser.parse_args(argv)
    try:
        print(build(options.base, options.engine))
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"image: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
