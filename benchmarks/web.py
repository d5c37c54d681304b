"""Benchmark: the planners' workbench serving a province-scale database to concurrent clients over loopback.

    .venv/bin/python benchmarks/web.py                                # 200k enterprises × 5 years (cached in /tmp)
    .venv/bin/python benchmarks/web.py --db sqlite:////path/to.db     # an existing database with a succeeded run
    .venv/bin/python benchmarks/web.py --enterprises 400 --years 3 --requests 80 --clients 4   # a toy run

Setup (timed, not part of the figures): ``data_samples.world.generate_world(N, years, seed)`` → contract CSV →
``riskgrade import`` into ``<workdir>/<N>x<years>-seed<seed>/web.db`` (kept: the next invocation reuses it), then two
nightly runs (the day before and the day after the world's last month, so that "changed since the previous run"
has something to show). ``--db URL`` skips all of this and uses that database's latest succeeded run.

Measured: ``riskgrade serve`` (the real command, one uvicorn process) on 127.0.0.1 and a free port, logged into as a
real account (created with a random password through ``scoring.results.accounts``); ``--clients`` concurrent
clients (``httpx.AsyncClient``, one connection each, closed loop: each sends its next request as soon as the previous
answered, plus ``--think-ms``) share a round-robin mix of page types until ``--requests`` requests were answered or
``--seconds`` passed:

- ``list``           the ranked list's first page, no filter;
- ``list filtered``  a tier + township, or a sector, or "changed since the previous run", or a search;
- ``list sorted``    sorted by another column (both directions);
- ``list deep``      a page far down the list (up to the last one);
- ``enterprise``     an enterprise file (一企一档) drawn at random;
- ``export csv``     the CSV export of a filtered list (a township's enterprises).

Before the concurrent run, ``--alone`` requests of each page type by one client (the service time without
queueing). After it, alone (no other load): the xlsx export of a filter holding about ``--xlsx-rows`` enterprises, timed
``--xlsx-repeat`` times. Printed: per page type count, errors, median, p95 and max in ms, and whether the targets
hold (p95 ≤ 300 ms and median ≤ 100 ms per page type with 20 clients; xlsx of 10k rows ≤ 5 s). Exit status 1 when
any request failed (a non-2xx answer or a page without its table), so the smoke test catches a broken page.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_P95_MS = 300.0
TARGET_MEDIAN_MS = 100.0
TARGET_XLSX_S = 5.0
TARGET_XLSX_ROWS = 10_000
BENCH_USER = "bench"
PAGE_KINDS = ("list", "list filtered", "list sorted", "list deep", "enterprise", "export csv")


def _say(message: str) -> None:
    print(message, flush=True)


# ---------------------------------------------------------------------------------------------
# Setup: the database (cached) and the account
# ---------------------------------------------------------------------------------------------


def _as_of(args) -> date:
    return args.start.replace(year=args.start.year + args.years)


def prepare_database(args) -> str:
    """The URL of a database holding a world and a succeeded nightly run (built once, then reused)."""
    if args.db:
        return args.db
    from features.db import connect
    from scoring.results.tables import latest_run

    workdir = args.workdir / f"{args.enterprises}x{args.years}-seed{args.seed}"
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "web.db"
    url = f"sqlite:///{db_path}"
    if db_path.exists():
        engine = connect(url)
        run = latest_run(engine)
        engine.dispose()
        if run is not None and str(run["as_of"])[:10] == str(_as_of(args)):
            _say(f"reusing {db_path} ({db_path.stat().st_size / 2**20:,.0f} MB, nightly run {run['run_id']} "
                 f"as of {_as_of(args)})")
            return url
    _build(args, workdir, db_path, url)
    return url


def _build(args, workdir: Path, db_path: Path, url: str) -> None:
    from data_samples.world import generate_world, write_world
    from features.db import connect
    from features.importer import import_directory
    from scoring.results.batch import run_nightly

    imported = workdir / "imported"  # the import is the slow part: an interrupted build resumes after it
    if not (imported.exists() and db_path.exists()):
        imported.unlink(missing_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        began = time.perf_counter()
        tables = generate_world(args.enterprises, args.years, args.seed, start=args.start)
        world_dir = workdir / "world"
        shutil.rmtree(world_dir, ignore_errors=True)
        write_world({k: v for k, v in tables.items() if k != "truth"}, world_dir)
        del tables
        _say(f"world: {args.enterprises:,} enterprises × {args.years} years (seed {args.seed}) generated and "
             f"written in {time.perf_counter() - began:.1f} s")
        engine = connect(url)
        began = time.perf_counter()
        import_directory(engine, world_dir, today=_as_of(args))
        engine.dispose()
        imported.touch()
        _say(f"  imported in {time.perf_counter() - began:.1f} s")
        shutil.rmtree(world_dir, ignore_errors=True)
    engine = connect(url)
    no_mlflow = f"sqlite:///{workdir / 'no-mlflow.db'}"  # no champion: the batch scores with the expert card
    from scoring.results.tables import latest_run

    for day in (_as_of(args) - timedelta(days=1), _as_of(args)):
        if latest_run(engine, day) is not None:
            continue  # an interrupted build's run that succeeded
        began = time.perf_counter()
        run = run_nightly(engine, day, tracking_uri=no_mlflow)
        _say(f"  nightly run {run.run_id} as of {day} in {time.perf_counter() - began:.1f} s")
    engine.dispose()
    _say(f"  {db_path} ({db_path.stat().st_size / 2**20:,.0f} MB)")


def create_bench_account(url: str) -> tuple[str, str]:
    """A viewer account for the clients (every township), with a fresh random password each invocation."""
    from features.db import connect
    from scoring.domain.policy import load_policy
    from scoring.results.accounts import add_account, get_account, set_password

    password = secrets.token_urlsafe(18)
    length = load_policy().web.password_min_length
    engine = connect(url)
    if get_account(engine, BENCH_USER) is None:
        add_account(engine, username=BENCH_USER, role="viewer", password=password, by="benchmarks/web.py",
                    min_password_length=length)
    else:  # made by a previous invocation on the same database
        set_password(engine, BENCH_USER, password, by="benchmarks/web.py", min_password_length=length)
    engine.dispose()
    return BENCH_USER, password


# ---------------------------------------------------------------------------------------------
# The server: `riskgrade serve` in its own process
# ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(url: str, port: int, log: Path, workers: int | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "scoring.cli", "serve", "--db", url, "--host", "127.0.0.1", "--port", str(port)]
    if workers:
        command += ["--workers", str(workers)]
    handle = log.open("w")
    process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                               cwd=Path(__file__).resolve().parents[1])
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"riskgrade serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise SystemExit(f"riskgrade serve did not answer on port {port} within 60 s:\n{log.read_text()[-3000:]}")


# ---------------------------------------------------------------------------------------------
# The clients
# ---------------------------------------------------------------------------------------------

_CSRF = re.compile(r'name="csrf_token"\s+value="([^"]+)"|value="([^"]+)"\s+name="csrf_token"')


def login(base: str, username: str, password: str):
    """The session cookies of a real login through the login form (CSRF token included)."""
    import httpx

    with httpx.Client(base_url=base, timeout=30) as client:
        form = client.get("/login")
        match = _CSRF.search(form.text)
        data = {"username": username, "password": password}
        if match:
            data["csrf_token"] = match.group(1) or match.group(2)
        answer = client.post("/login", data=data)
        if answer.status_code not in (200, 303) or "/login" in str(answer.headers.get("location", "")):
            raise SystemExit(f"login as {username} refused: HTTP {answer.status_code}")
        probe = client.get("/")
        if probe.status_code != 200:
            raise SystemExit(f"logged in, but / answers HTTP {probe.status_code}")
        return client.cookies


@dataclass
class Timings:
    seconds: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, seconds: float, error: str | None) -> None:
        self.seconds.setdefault(kind, []).append(seconds)
        if error:
            self.errors.setdefault(kind, []).append(error)


class _Connection:
    """One keep-alive HTTP/1.1 connection that sends GETs and reads whole answers (Content-Length or chunked).

    Hand-written on asyncio streams because the clients share the server's two cores: httpx spends about 5 ms of
    CPU a request, which the server would lose; this spends a few tenths of one."""

    def __init__(self, base: str, cookie_header: str):
        host, port = base.removeprefix("http://").rsplit(":", 1)
        self.host, self.port, self.cookie_header = host, int(port), cookie_header
        self.reader = self.writer = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nCookie: {self.cookie_header}"
                          f"\r\nAccept-Encoding: identity\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    break
            body = b"".join(p[:-2] for p in parts)
        else:
            body = await self.reader.read()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def _client(base: str, cookies, queue: asyncio.Queue, timings: Timings, deadline: float,
                  think: float) -> None:
    connection = _Connection(base, "; ".join(f"{name}={value}" for name, value in cookies.items()))
    try:
        while time.monotonic() < deadline:
            try:
                kind, path, marker = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            began = time.perf_counter()
            error = None
            try:
                status, body = await asyncio.wait_for(connection.get(path), timeout=60)
                if status != 200:
                    error = f"{path}: HTTP {status}"
                elif marker and marker not in body:
                    error = f"{path}: answer without {marker!r}"
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
                error = f"{path}: {type(exc).__name__} {exc}"
                await connection.close()
            timings.add(kind, time.perf_counter() - began, error)
            if think:
                await asyncio.sleep(think)
    finally:
        await connection.close()


async def drive(base: str, cookies, requests: list[tuple[str, str, bytes | None]], *, clients: int,
                seconds: float, think: float) -> tuple[Timings, float]:
    """Send ``requests`` (kind, path, marker the body must hold) through ``clients`` concurrent clients."""
    queue: asyncio.Queue = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    timings = Timings()
    began = time.perf_counter()
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(_client(base, cookies, queue, timings, deadline, think) for _ in range(clients)))
    return timings, time.perf_counter() - began


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``riskgrade serve --workers N``: the supervisor and its server processes)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(child) for child in task.read_text().split())
            except (OSError, ValueError):
                pass
    return found


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds so far of process ``pid`` and its descendants (Linux /proc), or None."""
    total = 0.0
    try:
        for member in _process_tree(pid):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None
    return total


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def alone_line(base: str, cookies, requests: list[tuple[str, str, bytes | None]], pid: int, n: int) -> str:
    """One client, one page type after the other: per type the median wall time and the server's CPU time per
    request (what the machine's load does not inflate; with one process, 20 clients in a closed loop wait about
    20 times that in all)."""
    import httpx

    parts = []
    with httpx.Client(base_url=base, cookies=cookies, timeout=120) as client:
        for kind in PAGE_KINDS:
            paths = [path for k, path, _ in requests if k == kind]
            seconds = []
            cpu_before = _cpu_seconds(pid)
            for path in paths:
                began = time.perf_counter()
                client.get(path).raise_for_status()
                seconds.append(time.perf_counter() - began)
            cpu_after = _cpu_seconds(pid)
            cpu = "" if cpu_before is None or cpu_after is None else \
                f" (server CPU {(cpu_after - cpu_before) / len(paths) * 1000:.0f} ms)"
            parts.append(f"{kind} {statistics.median(seconds) * 1000:.0f} ms{cpu}")
    return f"one client alone, medians of {n}: " + " · ".join(parts)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _meets(seconds: list[float]) -> bool:
    ms = [v * 1000 for v in seconds]
    return statistics.median(ms) <= TARGET_MEDIAN_MS and _percentile(ms, 0.95) <= TARGET_P95_MS


def summary_lines(timings: Timings, clients: int) -> tuple[list[str], bool]:
    """One line per page type (count, errors, median, p95, max in ms) and whether every type meets the targets."""
    lines = [f"{'page':<16}{'count':>7}{'errors':>8}{'median':>9}{'p95':>9}{'max':>9}   target (median ≤ "
             f"{TARGET_MEDIAN_MS:.0f} ms, p95 ≤ {TARGET_P95_MS:.0f} ms, {clients} clients)"]
    met = True
    for kind in PAGE_KINDS:
        values = timings.seconds.get(kind)
        if not values:
            continue
        ms = [v * 1000 for v in values]
        median, p95 = statistics.median(ms), _percentile(ms, 0.95)
        ok = _meets(values)
        met &= ok
        lines.append(f"{kind:<16}{len(ms):>7}{len(timings.errors.get(kind, [])):>8}{median:>9.1f}{p95:>9.1f}"
                     f"{max(ms):>9.1f}   {'met' if ok else 'MISSED'}")
    return lines, met


# ---------------------------------------------------------------------------------------------
# The workload
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """What the workload draws its filters from: the run's townships (largest first), and the list's size under
    each tier, sector and tier × sector filter, and a sample of enterprise ids and names."""

    n_scored: int
    townships: list[tuple[str, int]]
    filter_sizes: list[tuple[dict[str, str], int]]
    enterprise_ids: list[str]
    names: list[str]


def read_facts(url: str, sample: int, seed: int) -> Facts:
    import sqlalchemy as sa

    from features.db import connect
    from scoring.results.tables import latest_run, scores_history

    engine = connect(url)
    run = latest_run(engine)
    if run is None:
        raise SystemExit(f"{url} has no succeeded nightly run: run riskgrade nightly first")
    t = scores_history.c
    here = t.as_of == run["as_of"]
    with engine.connect() as conn:
        n_scored = conn.execute(sa.select(sa.func.count()).where(here)).scalar_one()
        townships = [(str(name), int(n)) for name, n in conn.execute(
            sa.select(t.township, sa.func.count()).where(here).group_by(t.township)
            .order_by(sa.func.count().desc(), t.township))]
        pairs = conn.execute(sa.select(t.final_tier, t.sector, sa.func.count()).where(here)
                             .group_by(t.final_tier, t.sector)).all()
        rows = conn.execute(sa.select(t.enterprise_id, t.name).where(here).order_by(t.enterprise_id)).all()
    engine.dispose()
    sizes: dict[tuple[tuple[str, str], ...], int] = {}
    for tier, sector, n in pairs:
        for key in ((("tier", tier),), (("sector", sector),), (("tier", tier), ("sector", sector))):
            sizes[key] = sizes.get(key, 0) + int(n)
    rng = random.Random(seed)
    picked = rng.sample(rows, min(sample, len(rows)))
    return Facts(n_scored=n_scored, townships=townships,
                 filter_sizes=sorted(((dict(k), n) for k, n in sizes.items()), key=lambda item: -item[1]),
                 enterprise_ids=[r[0] for r in picked], names=[str(r[1]) for r in picked])


def xlsx_filter(facts: Facts, rows: int) -> tuple[dict[str, str], int]:
    """The tier, sector or tier × sector filter whose list comes closest to ``rows`` enterprises."""
    return min(facts.filter_sizes, key=lambda item: (abs(item[1] - rows), len(item[0])))


def workload(facts: Facts, n: int, seed: int) -> list[tuple[str, str, bytes]]:
    """``n`` requests, the page types in turn (round robin), each drawn from its own set of addresses."""
    rng = random.Random(seed)
    pages = max(1, -(-facts.n_scored // 50))
    townships = [name for name, _ in facts.townships]
    big = townships[: max(1, len(townships) // 10)]  # the larger townships: filtered lists of some length
    sectors = sorted({f["sector"] for f, _ in facts.filter_sizes if set(f) == {"sector"}})
    list_marker = "家企业".encode()

    def filtered() -> str:
        choice = rng.randrange(6)
        if choice == 0:
            return f"/list?{urlencode({'tier': 'high', 'township': rng.choice(big)})}"
        if choice == 1:
            return f"/list?{urlencode({'sector': rng.choice(sectors)})}"
        if choice == 2:
            return "/list?changed=1"
        if choice == 3:
            return f"/list?{urlencode({'q': rng.choice(facts.names)[-8:-4] or rng.choice(facts.names)})}"
        if choice == 4:
            return "/list?override=any&tier=high"
        return f"/list?{urlencode({'township': rng.choice(townships), 'tier': rng.choice(('general', 'low'))})}"

    def sorted_() -> str:
        key = rng.choice(("probability", "points", "name", "township", "sector", "visits"))
        return f"/list?sort={key}" + ("&desc=1" if rng.random() < 0.5 else "")

    def deep() -> str:
        page = rng.randint(max(1, pages // 2), pages)
        return f"/list?page={page}" + (f"&sort={rng.choice(('name', 'probability'))}" if rng.random() < 0.5 else "")

    kinds = {
        "list": lambda: ("/list", list_marker),
        "list filtered": lambda: (filtered(), list_marker),
        "list sorted": lambda: (sorted_(), list_marker),
        "list deep": lambda: (deep(), list_marker),
        "enterprise": lambda: (f"/enterprise/{quote(rng.choice(facts.enterprise_ids), safe='')}",
                               "一企一档".encode()),
        "export csv": lambda: (f"/list/export.csv?{urlencode({'township': rng.choice(townships)})}", None),
    }
    assert tuple(kinds) == PAGE_KINDS
    names = list(kinds)
    out = []
    for i in range(n):
        kind = names[i % len(names)]
        path, marker = kinds[kind]()
        out.append((kind, path, marker))
    return out


def time_xlsx(base: str, cookies, facts: Facts, rows: int, repeat: int) -> list[str]:
    """The xlsx export of the filter closest to ``rows`` enterprises, alone, ``repeat`` times (0: not timed)."""
    import io

    import httpx
    import openpyxl

    if repeat < 1:
        return []
    where, expected = xlsx_filter(facts, rows)
    path = f"/list/export.xlsx?{urlencode(where)}"
    seconds = []
    with httpx.Client(base_url=base, cookies=cookies, timeout=120) as client:
        for _ in range(repeat):
            began = time.perf_counter()
            answer = client.get(path)
            seconds.append(time.perf_counter() - began)
            if answer.status_code != 200:
                raise SystemExit(f"{path}: HTTP {answer.status_code}")
    book = openpyxl.load_workbook(io.BytesIO(answer.content), read_only=True)
    got = sum(1 for _ in book.worksheets[0].iter_rows(values_only=True)) - 1
    median = statistics.median(seconds)
    scale = rows / max(got, 1)
    verdict = "met" if median * max(scale, 1) <= TARGET_XLSX_S else "MISSED"
    return [f"xlsx export {path}: {got:,} rows ({expected:,} expected), {len(answer.content) / 2**20:.1f} MB; "
            f"{repeat} runs alone: median {median:.2f} s, max {max(seconds):.2f} s"
            + (f" (≈ {median * scale:.2f} s for {rows:,} rows)" if got and abs(scale - 1) > 0.05 else "")
            + f"   target ≤ {TARGET_XLSX_S:.0f} s for {TARGET_XLSX_ROWS:,} rows: {verdict}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="an existing database (SQLAlchemy URL) with a succeeded nightly run")
    parser.add_argument("--enterprises", type=int, default=200_000)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2021, 1, 1))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/riskgrade-web-bench"))
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--workers", type=int, default=None,
                        help="server processes (default: riskgrade serve's, one per CPU core)")
    parser.add_argument("--requests", type=int, default=1200, help="requests in all (the page types in turn)")
    parser.add_argument("--seconds", type=float, default=300.0, help="stop sending after this long")
    parser.add_argument("--think-ms", type=float, default=0.0, help="pause of each client between requests")
    parser.add_argument("--warmup", type=int, default=30, help="requests sent first and not counted")
    parser.add_argument("--alone", type=int, default=5, help="requests of each page type sent by one client "
                        "alone before the concurrent run (0: none)")
    parser.add_argument("--xlsx-rows", type=int, default=TARGET_XLSX_ROWS)
    parser.add_argument("--xlsx-repeat", type=int, default=3)
    args = parser.parse_args(argv)

    import warnings

    warnings.filterwarnings("ignore")
    url = prepare_database(args)
    facts = read_facts(url, sample=2000, seed=args.seed)
    username, password = create_bench_account(url)
    port = _free_port()
    log = Path(args.workdir) / f"serve-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    _say(f"riskgrade serve on 127.0.0.1:{port} ({url}; {facts.n_scored:,} enterprises in the latest run, "
         f"{len(facts.townships):,} townships); {os.cpu_count()} CPUs; log {log}")
    server = start_server(url, port, log, args.workers)
    try:
        base = f"http://127.0.0.1:{port}"
        cookies = login(base, username, password)
        requests = workload(facts, args.warmup + args.requests, args.seed)
        warm, measured = requests[: args.warmup], requests[args.warmup:]
        asyncio.run(drive(base, cookies, warm, clients=min(args.clients, 4), seconds=args.seconds, think=0))
        if args.alone:
            _say(alone_line(base, cookies, workload(facts, args.alone * len(PAGE_KINDS), args.seed + 1),
                            server.pid, args.alone))
        server_cpu, client_cpu = _cpu_seconds(server.pid), _own_cpu_seconds()
        timings, wall = asyncio.run(drive(base, cookies, measured, clients=args.clients, seconds=args.seconds,
                                          think=args.think_ms / 1000))
        answered = sum(len(v) for v in timings.seconds.values())
        server_cpu = None if server_cpu is None else (_cpu_seconds(server.pid) or 0.0) - server_cpu
        client_cpu = _own_cpu_seconds() - client_cpu
        per_request = "" if server_cpu is None or not answered else (
            f"; CPU per request: server {server_cpu / answered * 1000:.1f} ms, clients {client_cpu / answered * 1000:.1f}"
            f" ms")
        _say(f"{answered:,} requests by {args.clients} concurrent clients in {wall:.1f} s "
             f"({answered / wall:.1f} requests/s; think time {args.think_ms:.0f} ms{per_request})")
        lines, met = summary_lines(timings, args.clients)
        for line in lines:
            _say(line)
        for line in time_xlsx(base, cookies, facts, args.xlsx_rows, args.xlsx_repeat):
            _say(line)
        errors = [e for kind in timings.errors.values() for e in kind]
        for error in errors[:10]:
            _say(f"error: {error}")
        missed = [kind for kind in PAGE_KINDS if kind in timings.seconds and not _meets(timings.seconds[kind])]
        _say(f"targets met for every page type with {args.clients} clients" if met else
             f"targets MISSED with {args.clients} clients for: {', '.join(missed)}")
        return 1 if errors else 0
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    raise SystemExit(main())
