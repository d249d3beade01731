"""What every benchmark shares: the machine, the servers under test, signed callbacks, the load
generators (wrk when installed, an aiohttp client otherwise) and the printed report.

Everything here talks to 127.0.0.1 only, and every load loop stops at a count and a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing: use its verifycli
    sys.path.insert(0, str(ROOT))

TOKEN = "benchmark-auth-token-0123456789"  # not a secret: only ever signs loopback traffic
CALLBACK_PATH = "/verify/callback"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0
_URL = re.compile(r"http://127\.0\.0\.1:(\d+)")
_ID = re.compile(rb"#(\d+)")
_SCRUB = ("PLIVO_", "VERIFYCLI_", "NGROK_")


# -- the machine -----------------------------------------------------------------------------


def wrk_path() -> str | None:
    return shutil.which("wrk")


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine() -> dict[str, str]:
    """Facts a figure means nothing without."""
    import aiohttp

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": f"{usable} usable of {os.cpu_count()}",
        "cpu": cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{platform.system()} {platform.release()}",
        "sqlite": sqlite3.sqlite_version,
        "aiohttp": aiohttp.__version__,
    }


# -- the servers under test ------------------------------------------------------------------


def verifycli_command() -> list[str]:
    """The installed console script beside this interpreter, else `python -m verifycli`."""
    script = Path(sys.executable).with_name("verifycli")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "verifycli"]


def child_env(**extra: str) -> dict[str, str]:
    """This environment without any Plivo, ngrok or verifycli settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
    # This checkout's verifycli, unless PYTHONPATH names another one first.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(ROOT)]))
    env.update(extra)
    return env


@dataclass
class Server:
    """A server subprocess on 127.0.0.1; its stderr goes to a log file."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mb(self) -> float:
        """Resident set size now, from /proc (0 where there is no /proc)."""
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU seconds used so far: the main thread's, and the other threads'
        together (Python does not name its threads for the OS); empty without /proc."""
        used: dict[str, float] = {}
        tick = os.sysconf("SC_CLK_TCK")
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{self.pid}/task").iterdir():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                    name = "main thread" if task.name == str(self.pid) else "other threads"
                    used[name] = used.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
        return used

    def stop(self) -> int:
        """SIGTERM, as a user's Ctrl-C would; the listener commits what it holds and exits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def _start(name: str, argv: list[str], workdir: Path, stdout: int | IO[Any]) -> Server:
    log = workdir / f"{name}.stderr.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=err,
            cwd=workdir,  # an empty folder: no stray .env is read
            env=child_env(PLIVO_AUTH_TOKEN=TOKEN),
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = _URL.search(log.read_text(errors="replace"))
        if found:
            return Server(name, proc, found.group(0), log)
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"{name} did not start: {log.read_text(errors='replace')[-2000:]}")


def start_listener(
    store: Path, workdir: Path, stdout: int | IO[Any] = subprocess.DEVNULL
) -> Server:
    """The real `verifycli listen --json`, signatures checked, store on."""
    argv = [*verifycli_command(), "listen", "--no-tunnel", "--port", "0", "--json"]
    return _start("verifycli", [*argv, "--store", str(store)], workdir, stdout)


def start_bare(workdir: Path) -> Server:
    return _start(
        "bare", [sys.executable, str(HERE / "bare_server.py")], workdir, subprocess.DEVNULL
    )


def start_minimal(store: Path, workdir: Path, public_url: str) -> Server:
    """The correct-work baseline (`minimal_listener.py`), checking signatures made for
    `public_url` (the verifycli listener's, so both do the same HMAC work on the same batch)."""
    argv = [sys.executable, str(HERE / "minimal_listener.py"), "--store", str(store)]
    return _start("minimal", [*argv, "--public-url", public_url], workdir, subprocess.DEVNULL)


@contextlib.contextmanager
def workspace(keep: bool = False) -> Iterator[Path]:
    """A scratch folder on a real disk (stores must fsync for real), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="verifycli-bench-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def stored_ids(store: Path) -> set[int]:
    conn = sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT id FROM events")}
    finally:
        conn.close()


# -- signed callbacks ------------------------------------------------------------------------


@dataclass(frozen=True)
class Callback:
    """One pre-signed Verify status callback: what a load generator sends as is."""

    attempt_uuid: str
    nonce: str
    headers: dict[str, str]
    body: bytes

    def raw(self, host: str) -> bytes:
        """The whole HTTP/1.1 request, for wrk."""
        lines = [f"POST {CALLBACK_PATH} HTTP/1.1", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


_STATUSES = (("queued", "in-progress"), ("sent", "in-progress"), ("delivered", "verified"))


def callbacks(base_url: str, count: int) -> list[Callback]:
    """`count` distinct V3-signed POST callbacks for `base_url`, each its own nonce and attempt."""
    from verifycli.signature import HEADER, NONCE_HEADER, sign_v3

    url = base_url.rstrip("/") + CALLBACK_PATH
    made = []
    for i in range(count):
        channel_status, session_status = _STATUSES[i % len(_STATUSES)]
        attempt = str(uuid.uuid4())
        params = {
            "SessionUUID": str(uuid.uuid4()),
            "SessionStatus": session_status,
            "RequestTime": "2026-11-28 09:30:00 +0000 UTC",
            "Recipient": "+14155550100",
            "ChannelErrorCode": "",
            "Channel": "sms",
            "AttemptUUID": attempt,
            "AttemptSequence": "1",
            "ChannelStatus": channel_status,
        }
        nonce = f"{uuid.uuid4().int % 10**20:020d}"  # Plivo's nonces are 20 digits
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "PlivoBench/1.0",
            NONCE_HEADER["v3"]: nonce,
            HEADER["v3"]: sign_v3("POST", url, params, nonce, TOKEN),
        }
        made.append(Callback(attempt, nonce, headers, urlencode(params).encode()))
    return made


# -- load ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Load:
    """What one load run saw from the client side."""

    loader: str
    answers: int = 0  # complete HTTP answers, any status
    ok: int = 0  # 2xx answers
    errors: int = 0  # non-2xx answers, socket errors, timeouts
    seconds: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    ids: list[int] = field(default_factory=list)  # event ids named in 2xx answers
    sent_at: dict[int, float] = field(default_factory=dict)  # callback index -> perf_counter

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def add(self, other: Load) -> None:
        self.answers += other.answers
        self.ok += other.ok
        self.errors += other.errors
        self.seconds += other.seconds
        self.ids += other.ids


_LUA = r"""
-- Generated by benchmarks/_common.py: cycles through pre-signed requests read from a file.
local reqs = {}
local n, i = 0, 0
local threads = {}
ok, ids = 0, {}  -- globals: done() reads them from each thread
local pause = %(delay)s

local f = assert(io.open(%(data)q, "rb"))
while true do
  local len = f:read("*l")
  if not len then break end
  n = n + 1
  reqs[n] = f:read(tonumber(len))
end
f:close()

function setup(thread)
  thread:set("offset", #threads)
  table.insert(threads, thread)
end

function init(args)
  i = (offset or 0) * 7919
end

function request()
  i = i %% n + 1
  return reqs[i]
end

if pause > 0 then
  -- Uniform around the mean: the connections drift apart instead of sending in step.
  function delay() return math.random(0, 2 * pause) end
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
    local id = string.match(body, "#(%%d+)")
    if id then ids[#ids + 1] = id end
  end
end

function done(summary, latency, requests)
  local total_ok, all = 0, {}
  for _, t in ipairs(threads) do
    total_ok = total_ok + t:get("ok")
    local got = t:get("ids")
    for k = 1, #got do all[#all + 1] = got[k] end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK-RESULT {"answers": %%d, "ok": %%d, "socket_errors": %%d, "us": %%d, ' ..
    '"p50_us": %%d, "p99_us": %%d, "ids": [%%s]}\n',
    summary.requests, total_ok, e.connect + e.read + e.write + e.timeout,
    summary.duration, latency:percentile(50), latency:percentile(99), table.concat(all, ",")))
end
"""


def run_wrk(
    url: str,
    batch: Sequence[Callback],
    *,
    connections: int,
    seconds: float,
    rate: float | None = None,
    scratch: Path,
) -> Load:
    """wrk for `seconds` on `connections` connections, cycling through `batch` (pre-signed, so a
    request repeats once the batch is used up). With `rate`, each connection waits a random
    time (mean `connections / rate`) before each request: about `rate` req/s, a little less by
    the answers' own latency."""
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError("wrk is not installed")
    host = url.split("//", 1)[1].rstrip("/")
    data = scratch / "wrk-requests.bin"
    with data.open("wb") as out:
        for cb in batch:
            raw = cb.raw(host)
            out.write(b"%d\n" % len(raw) + raw)
    delay = max(1, round(connections * 1000 / rate)) if rate else 0
    script = scratch / "wrk-script.lua"
    # %q of Lua is not Python's; the path is plain ASCII, so a quoted repr is equivalent.
    script.write_text(_LUA.replace("%(data)q", json.dumps(str(data))) % {"delay": delay})
    argv = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s"]
    done = subprocess.run(
        [*argv, "-s", str(script), url.rstrip("/") + CALLBACK_PATH],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK-RESULT ")), None)
    if line is None or done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    got = json.loads(line.split(" ", 1)[1])
    return Load(
        loader="wrk",
        answers=got["answers"],
        ok=got["ok"],
        errors=got["answers"] - got["ok"] + got["socket_errors"],
        seconds=got["us"] / 1e6,
        p50_ms=got["p50_us"] / 1000,
        p99_ms=got["p99_us"] / 1000,
        ids=[int(i) for i in got["ids"]],
    )


async def aiohttp_load(
    url: str,
    batch: Sequence[Callback],
    connections: int,
    count: int,
    seconds: float,
    rate: float | None,
) -> tuple[Load, list[float]]:
    import aiohttp

    target = url.rstrip("/") + CALLBACK_PATH
    load = Load(loader="aiohttp")
    latencies: list[float] = []
    timeout = aiohttp.ClientTimeout(total=10)
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        deadline = started + seconds

        async def one(index: int, due: float) -> None:
            cb = batch[index % len(batch)]
            load.sent_at[index] = due
            try:
                async with session.post(target, data=cb.body, headers=cb.headers) as answer:
                    body = await answer.read()
                    status = answer.status
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                load.errors += 1
                return
            # Measured from when the request was due, not sent: a late send counts as waiting.
            latencies.append((time.perf_counter() - due) * 1000)
            load.answers += 1
            if 200 <= status < 300:
                load.ok += 1
                found = _ID.search(body)
                if found:
                    load.ids.append(int(found.group(1)))
            else:
                load.errors += 1

        if rate is None:  # closed loop: every connection sends its next request at once
            issued = 0

            async def worker() -> None:
                nonlocal issued
                while issued < count and time.perf_counter() < deadline:
                    index = issued
                    issued += 1
                    await one(index, time.perf_counter())

            await asyncio.gather(*(worker() for _ in range(connections)))
        else:  # open loop: request k is due at start + k / rate, answered or not
            slots = asyncio.Semaphore(connections)
            tasks = []

            async def paced(index: int, due: float) -> None:
                async with slots:
                    await one(index, due)

            for index in range(count):
                due = started + index / rate
                now = time.perf_counter()
                if due >= deadline:
                    break
                if due > now:
                    await asyncio.sleep(due - now)
                tasks.append(asyncio.ensure_future(paced(index, due)))
            await asyncio.gather(*tasks)
        load.seconds = time.perf_counter() - started
    load.p50_ms = percentile(latencies, 50)
    load.p99_ms = percentile(latencies, 99)
    return load, latencies


def run_aiohttp(
    url: str,
    batch: Sequence[Callback],
    *,
    connections: int,
    count: int,
    seconds: float,
    rate: float | None = None,
) -> Load:
    """An aiohttp client sending `count` callbacks (cycling `batch`), stopping at `seconds`
    whatever the count; paced at `rate` req/s when given."""
    load, _ = asyncio.run(aiohttp_load(url, batch, connections, count, seconds, rate))
    return load


def run_load(
    loader: str,
    url: str,
    batch: Sequence[Callback],
    *,
    connections: int,
    seconds: float,
    count: int,
    rate: float | None = None,
    scratch: Path,
) -> Load:
    """wrk for `seconds` when `loader` is wrk; else aiohttp for `count` or `seconds`."""
    if loader == "wrk":
        return run_wrk(
            url, batch, connections=connections, seconds=seconds, rate=rate, scratch=scratch
        )
    return run_aiohttp(url, batch, connections=connections, count=count, seconds=seconds, rate=rate)


def choose_loader(asked: str) -> str:
    if asked == "auto":
        return "wrk" if wrk_path() else "aiohttp"
    if asked == "wrk" and not wrk_path():
        raise SystemExit("--loader wrk: wrk is not installed (apt-get install wrk)")
    return asked


def loader_note(loader: str) -> str:
    if loader == "wrk":
        version = subprocess.run([wrk_path() or "wrk", "-v"], capture_output=True, text=True)
        first = (version.stdout or version.stderr).splitlines()[0].split(" [")[0]
        return f"{first}, 1 thread"
    return "aiohttp client (wrk not used): the load generator shares the CPU and bounds the figures"


# -- the report ------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the README's table."""

    benchmark: str
    measured: str
    baseline: str
    ratio: str
    target: str
    floor: str
    verdict: str
    command: str

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


def verdict(target_met: bool, floor_met: bool | None = None) -> str:
    if target_met:
        return "target met"
    if floor_met is None:
        return "target missed"
    return "target missed, floor met" if floor_met else "FLOOR MISSED"


def parser(description: str | None) -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(description=description)
    parse.add_argument(
        "--quick", action="store_true", help="a tiny run, to check the benchmark still works"
    )
    parse.add_argument("--json", dest="json_out", type=Path, help="also write the rows here")
    return parse


def add_loader_option(parse: argparse.ArgumentParser) -> None:
    parse.add_argument(
        "--loader",
        choices=("auto", "wrk", "aiohttp"),
        default="auto",
        help="load generator: wrk when installed (auto), or the aiohttp client",
    )


def report(title: str, rows: list[Row], details: dict[str, str], json_out: Path | None) -> None:
    """Print the machine, the details and the rows; write them as JSON when asked."""
    print(f"\n== {title} ==")
    for key, value in {**machine(), **details}.items():
        print(f"  {key:<12} {value}")
    for row in rows:
        print(f"  -> {row.benchmark}: {row.measured}")
        print(f"     baseline {row.baseline}; ratio {row.ratio}")
        print(f"     target {row.target}; floor {row.floor}: {row.verdict}")
    sys.stdout.flush()
    if json_out is not None:
        json_out.write_text(
            json.dumps(
                {"machine": machine(), "details": details, "rows": [r.to_dict() for r in rows]}
            )
        )


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0
