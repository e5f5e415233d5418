"""Graceful shutdown without dropped connections: on SIGTERM the service drains before uvicorn stops it.

uvicorn alone, on SIGTERM, closes its listening socket and every connection that has no request in progress.
Two kinds of clients then lose their connection without an answer: one the kernel had already accepted into
the listen backlog (closing the socket resets it), and one accepted whose request had not arrived yet. So
``install_drain`` puts a drain in front of uvicorn's shutdown:

1. for ``drain_s`` the service keeps accepting and answers new requests 503 "shutting down" with
   ``Connection: close`` (``/readyz`` 503 too, so a load balancer stops sending); requests already in
   progress are answered normally;
2. the listening sockets stop completing new TCP handshakes (a socket filter drops incoming SYNs: such a
   client retries its SYN after ~1 s and is refused once the socket is closed), and for ``SETTLE_S`` the
   connections accepted last can still send their request (answered 503);
3. then uvicorn's own graceful shutdown: close the (now empty) listener, finish requests in flight (at most
   its ``timeout_graceful_shutdown``), run the app's lifespan shutdown.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import socket
import struct
import sys
from collections.abc import Callable

logger = logging.getLogger(__name__)

SETTLE_S = 0.5  # after the listener stops taking connections: time for the last ones' requests to arrive
SO_ATTACH_FILTER = 26  # Linux
# classic BPF run on each packet for the listening socket (offset 0 = TCP header): drop SYN without ACK
# (a new handshake), keep the rest (the last ACK of handshakes already under way, data)
_DROP_NEW_SYN = (
    (0x30, 0, 0, 13),  # ldb [13]: the TCP flags
    (0x54, 0, 0, 0x12),  # and #(SYN|ACK)
    (0x15, 0, 1, 0x02),  # jeq #SYN: drop, else keep
    (0x06, 0, 0, 0),  # ret #0: drop
    (0x06, 0, 0, 0xFFFFFFFF),  # ret #-1: keep
)


def stop_new_handshakes(fileno: int) -> bool:
    """Make the listening socket ``fileno`` drop new connection attempts (Linux); False where unsupported.
    Connections already accepted, or in the accept queue, are not touched."""
    if not sys.platform.startswith("linux"):
        return False
    program = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in _DROP_NEW_SYN))
    fprog = struct.pack("HL", len(_DROP_NEW_SYN), ctypes.addressof(program))
    listener = socket.socket(fileno=os.dup(fileno))  # a second handle: closing it leaves the socket open
    try:
        listener.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError as exc:
        logger.warning("cannot filter new connections on the listening socket (%s)", exc)
        return False
    finally:
        listener.close()
    return True


def _listening_filenos(uvicorn_handler: Callable) -> list[int]:
    """The listening sockets of the uvicorn server whose signal handler is ``uvicorn_handler``."""
    server = getattr(uvicorn_handler, "__self__", None)
    filenos = []
    for listener in getattr(server, "servers", None) or []:
        filenos += [sock.fileno() for sock in listener.sockets or []]
    return filenos


def install_drain(drain_s: float, on_drain: Callable[[], None]) -> None:
    """Put a drain in front of the running uvicorn server's SIGTERM/SIGINT handling (call from the
    application's startup, in the event loop's thread, once uvicorn has installed its handlers).

    ``on_drain`` is called at the first signal (the app starts answering 503); a second signal goes to
    uvicorn at once (a second Ctrl+C forces its exit).
    """
    loop = asyncio.get_running_loop()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    if not all(callable(handler) for handler in handlers.values()):
        return  # not under uvicorn's signal handling (e.g. a test client): nothing to wrap
    draining: list[int] = []
    tasks: list[asyncio.Task[None]] = []

    async def drain(sig: int) -> None:
        uvicorn_handler = handlers[sig]
        logger.info("yoloxdet serve: draining for %g s (new requests get 503)", drain_s)
        await asyncio.sleep(drain_s)
        filenos = _listening_filenos(uvicorn_handler)
        if filenos and all(stop_new_handshakes(fileno) for fileno in filenos):
            await asyncio.sleep(SETTLE_S)
        uvicorn_handler(sig, None)

    def start(sig: int) -> None:
        tasks.append(loop.create_task(drain(sig)))  # keep a reference: the loop holds tasks weakly

    def on_signal(sig: int, frame: object) -> None:
        if draining:
            handlers[sig](sig, frame)
            return
        draining.append(sig)
        on_drain()
        loop.call_soon_threadsafe(start, sig)  # wakes the loop, which may be waiting in select

    for sig in handlers:
        signal.signal(sig, on_signal)
