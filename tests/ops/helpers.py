"""Helpers for the operations tests: the CLI as a user runs it, and plain HTTP GETs."""

import asyncio
import subprocess
import sys

from tests.support import settings_env
from worker.settings import Settings


async def cli(
    settings: Settings, *args: str, stdin: str | None = None, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    """`session-worker ARGS` in a fresh process, with these settings in its environment."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "worker", *args],
        env=settings_env(settings),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


async def http_get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    """(status, body) of one request to 127.0.0.1:port."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode()
