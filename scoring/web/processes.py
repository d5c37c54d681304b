"""``riskgrade serve --workers N``: N uvicorn server processes, each accepting on its own socket of the same port.

uvicorn's own workers share one listening socket, and whichever process wakes first accepts every connection
waiting: 20 browsers (or benchmark clients) that connect at once were measured at 19 connections on one of two
processes and 1 on the other, and since a browser keeps its connection, one core served nearly all the pages while
the other idled. Here each process binds the port itself with ``SO_REUSEPORT``, and the kernel spreads new
connections over the sockets by a hash of their addresses. The supervisor restarts a process that dies while
serving, and stops the others when one cannot start (a database that cannot be opened, say) or on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import sys
import time
from typing import Any

__all__ = ["balanced_by_kernel", "serve_processes"]

log = logging.getLogger("riskgrade.web")

STARTUP_SECONDS = 30.0
"""A process that exits with an error within this long of its start (or says its app could not start, status 3)
failed to start: the supervisor stops rather than start it again and again. One killed, or failing later, is
replaced."""


def balanced_by_kernel() -> bool:
    """Whether this system spreads connections over sockets sharing a port (Linux's ``SO_REUSEPORT``)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _listening_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


def _serve_one(host: str, port: int, options: dict[str, Any]) -> None:
    """One server process: its own socket on the port, the app made by ``app_from_environment``."""
    import uvicorn

    sock = _listening_socket(host, port, reuse_port=True)
    config = uvicorn.Config("scoring.web.app:app_from_environment", factory=True, **options)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    if not server.started:  # the app could not start: tell the supervisor (uvicorn's own startup-failure code)
        sys.exit(3)


def serve_processes(processes: int, *, host: str, port: int, options: dict[str, Any]) -> int:
    """Run ``processes`` server processes on ``host:port`` until Ctrl-C or SIGTERM; the exit status (0: stopped,
    3: a process could not start). Raises :class:`OSError` when the port is taken: checked first with a socket
    of its own, so that a second ``riskgrade serve`` on the same port is refused instead of joining the first."""
    _listening_socket(host, port, reuse_port=False).close()
    context = multiprocessing.get_context("spawn")

    def start() -> tuple[Any, float]:
        process = context.Process(target=_serve_one, args=(host, port, options), daemon=False)
        process.start()
        return process, time.monotonic()

    def stop(*_args) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    running = [start() for _ in range(processes)]
    status = 0
    try:
        while True:
            for index, (process, started) in enumerate(running):
                process.join(timeout=0.2 / len(running))
                if process.exitcode is None:
                    continue
                young = time.monotonic() - started < STARTUP_SECONDS
                if process.exitcode == 3 or (young and process.exitcode > 0):
                    log.error("server process %s exited with %s while starting: stopping", process.pid,
                              process.exitcode)
                    status = 3
                    return status
                log.warning("server process %s exited with %s: starting another", process.pid, process.exitcode)
                running[index] = start()
    except KeyboardInterrupt:
        return status
    finally:
        signal.signal(signal.SIGTERM, previous)
        for process, _ in running:
            if process.exitcode is None:
                process.terminate()  # uvicorn ends its requests in progress, then exits
        for process, _ in running:
            process.join(timeout=30)
            if process.exitcode is None:
                process.kill()
                process.join()
