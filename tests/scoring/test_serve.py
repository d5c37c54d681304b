"""``riskgrade serve --workers N``: several server processes behind one port share sessions and login throttling."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from features.db import connect

from web_helpers import CSRF_PATTERN, PASSWORD, fast_hashes, make_accounts  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(child) for child in task.read_text().split()]
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``riskgrade serve --workers 2`` on a database with the test accounts, one for the module (each start takes
    seconds); yields (base URL, server process). The test that kills a server process comes last."""
    tmp_path = tmp_path_factory.mktemp("served")
    url = f"sqlite:///{tmp_path / 'riskgrade.db'}"
    engine = connect(url)
    make_accounts(engine)
    engine.dispose()
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "scoring.cli", "serve", "--db", url, "--port", str(port),
                               "--workers", "2"], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{base}/login", timeout=2).status_code == 200 and len(_children(server.pid)) >= 2:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "riskgrade serve did not answer within 60 s"
            time.sleep(0.2)
        yield base, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _login(client: httpx.Client, username: str, password: str) -> httpx.Response:
    token = CSRF_PATTERN.search(client.get("/login").text).group(1)
    return client.post("/login", data={"username": username, "password": password, "next": "/",
                                       "csrf_token": token})


def test_several_server_processes_share_sessions_and_the_login_throttle(served):
    base, server = served
    assert len(_children(server.pid)) >= 2  # the supervisor's two server processes (and multiprocessing's tracker)
    with httpx.Client(base_url=base, timeout=30) as client:
        assert _login(client, "viewer", PASSWORD).status_code == 303
        # new connections each time: the kernel hands them to either process, and the session holds on both
        answers = [httpx.get(f"{base}/runs", cookies=client.cookies, timeout=30) for _ in range(20)]
        assert [a.status_code for a in answers] == [200] * 20
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(5):
            assert _login(client, "planner", "wrong password here").status_code == 401
    refused = [_login(httpx.Client(base_url=base, timeout=30), "planner", PASSWORD).status_code for _ in range(4)]
    assert refused == [429] * 4  # whichever process answers


def _connections_per_process(pids: list[int], port: int, peers: set[int]) -> dict[int, int]:
    """Established TCP connections on local ``port`` from the client ports ``peers``, held by each of ``pids``
    (Linux /proc)."""
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(f.rsplit(":", 1)[1], 16) for f in fields[1:3])
            if local == port and remote in peers and fields[3] == "01":  # 01: ESTABLISHED
                established.add(fields[9])  # the socket's inode
    held = {}
    for pid in pids:
        inodes = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = fd.readlink().name
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
        held[pid] = len(inodes & established)
    return held


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's spreading of connections is Linux's")
def test_connections_opened_at_once_are_spread_over_the_server_processes(served):
    # uvicorn's shared socket gave 19 of 20 such connections to one process (one core busy, the other idle)
    base, server = served
    port = int(base.rsplit(":", 1)[1])
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    try:
        for client in clients:
            client.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        for client in clients:
            assert client.recv(12).startswith(b"HTTP/1.1 200")
        peers = {client.getsockname()[1] for client in clients}
        held = {pid: n for pid, n in _connections_per_process(_children(server.pid), port, peers).items() if n}
        assert sum(held.values()) == 20
        # spread by a hash of the addresses: both processes hold some (fewer than 2 on either: 1 run in 25,000)
        assert len(held) == 2 and min(held.values()) >= 2, held
    finally:
        for client in clients:
            client.close()


def test_a_second_server_on_the_same_port_is_refused(served, tmp_path):
    base, _ = served
    port = base.rsplit(":", 1)[1]
    second = subprocess.run([sys.executable, "-m", "scoring.cli", "serve", "--db", f"sqlite:///{tmp_path / 'b.db'}",
                             "--port", port, "--workers", "2"], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                               "PYTHONPATH": str(ROOT)})
    assert second.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
    assert "Traceback" not in second.stderr + second.stdout


def _server_processes(pid: int) -> set[int]:
    """The supervisor's server processes (not multiprocessing's resource tracker)."""
    return {child for child in _children(pid)
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the supervisor of sockets of their own is Linux's")
def test_a_server_process_killed_is_replaced_and_the_others_keep_serving(served):
    base, server = served
    before = _server_processes(server.pid)
    assert len(before) == 2
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        now = _server_processes(server.pid)
        if len(now) == 2 and victim not in now:
            break
        assert server.poll() is None and time.monotonic() < deadline, f"not replaced: {now}"
        time.sleep(0.2)
    answers = [httpx.get(f"{base}/login", timeout=30).status_code for _ in range(20)]  # new connections
    assert answers == [200] * 20
