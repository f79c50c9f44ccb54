"""Serve one simulated engine: the model's real-time loop and uvicorn on one event loop."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import contextlib

import uvicorn

from infersight.simulator.engine import SimulatedEngine
from infersight.simulator.server import build_app

log = logging.getLogger("infersight.simulator")


class PortInUse(Exception):
    pass


def bind(host: str, port: int) -> socket.socket:
    """Bind before starting anything, so a taken port is one clear error rather than a traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets that name TCP, and
    # without it Nagle holds a stream's first chunk for the client's delayed ACK (40 ms on Linux)
    # on every keep-alive request after the first. Real engines (uvloop) set TCP_NODELAY.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise PortInUse(f"port {port} on {host} is already in use (another engine or demo running?); "
                            f"pick another with --port") from e
        raise
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


async def serve(engine: SimulatedEngine, sock: socket.socket) -> None:
    config = uvicorn.Config(build_app(engine), log_level="warning", access_log=False, lifespan="off",
                            timeout_keep_alive=30)
    server = uvicorn.Server(config)
    loop_task = asyncio.create_task(engine.run())
    try:
        await server.serve(sockets=[sock])
    finally:
        loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop_task
