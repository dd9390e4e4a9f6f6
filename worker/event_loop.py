"""The event loop the commands run on: uvloop by default.

uvloop (libuv, in Cython) runs the same asyncio code with a cheaper loop iteration and socket
I/O. The loop and its sockets were a quarter of the worker's CPU on asyncio's own loop, but on
this 2-core test machine, where Kafka and Redis compete for the same cores, A/B runs of the
worker were within their noise (~5%) either way. `SW_EVENT_LOOP=asyncio` goes back to the
standard loop (to rule uvloop out when debugging, or where it is not wanted).
"""

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], kind: str = "uvloop") -> T:
    if kind == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
