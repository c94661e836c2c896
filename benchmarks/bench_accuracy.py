"""How precisely does the benchmark client keep its schedule, and what does it cost?

Starts a fast streaming server in a separate process (the embedded vLLM simulator's fast
mode when it exists, else ``--server dev``: a minimal SSE server defined in this script for
development only) and reports, with the machine's load average beside every measurement:

1. send-time error (actual send minus deadline) p50/p99 and achieved vs scheduled rate at
   100, 500 and 1000 requests/s (constant arrivals, 16-token streamed chat responses);
2. client CPU per request and per streamed event: all-in ratios, and a split from two runs
   with different output lengths (the slope is the cost of one more event);
3. scale-out: 2000 requests/s from one process and from two worker processes;
4. receive delay (client receive time minus the server's ``sim_sent_ns`` stamp, both
   ``time.monotonic_ns``) p50/p99 at rising event rates, and the highest event rate one
   client process sustains with p99 under 1 ms.

Other processes on a small machine distort every number here: ``--quiet-wait S`` waits up
to S seconds before each measurement for the rest of the machine to use less than
``--quiet-limit`` of its CPUs (from ``/proc/stat``), and each row shows the load.
``--pin`` puts client and server on different CPUs (a wake-up on the core the server holds
waits for it); ``--nice -10`` (root) keeps other processes from preempting either.

Run: ``.venv/bin/python benchmarks/bench_accuracy.py`` (``--quick`` for a short pass,
``--server dev`` to force the script's own server, ``--json out.json`` to keep the numbers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import select
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from labkit import bench  # noqa: E402
from labkit.bench.runner import Concurrency, Rate, RunOptions  # noqa: E402

# --------------------------------------------------------------------------- dev server (development only)

_CHUNK = (
    b'{"id":"chatcmpl-dev","object":"chat.completion.chunk","model":"dev","choices":[{"index":0,'
    b'"delta":{"content":"%s"},"finish_reason":null}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,'
    b'"total_tokens":%d},"sim_sent_ns":%d}'
)


def _frame(payload: bytes) -> bytes:
    data = b"data: " + payload + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


class _DevServer(asyncio.Protocol):
    """Keep-alive HTTP/1.1; answers every POST with a chunked SSE stream of ``max_tokens`` words."""

    def __init__(self, ttft_s: float, itl_s: float) -> None:
        self.buf = b""
        self.ttft = ttft_s
        self.itl = itl_s
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            i = head.find(b"content-length:")
            length = int(head[i + 15 : head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None]) if i >= 0 else 0
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            if head.startswith(b"get"):
                payload = b'{"object":"list","data":[{"id":"dev","object":"model"}]}'
                self.transport.write(  # type: ignore[union-attr]
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(payload), payload)
                )
                continue
            req = json.loads(body)
            self._stream(int(req.get("max_tokens", 16)), len(json.dumps(req.get("messages", ""))) // 4)

    def _stream(self, tokens: int, prompt: int) -> None:
        loop = asyncio.get_running_loop()
        self.transport.write(  # type: ignore[union-attr]
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        state = {"i": 0}

        def emit() -> None:
            t = self.transport
            if t is None or t.is_closing():
                return
            i = state["i"]
            if i < tokens:
                state["i"] = i + 1
                t.write(_frame(_CHUNK % (b" the" if i else b"the", prompt, i + 1, prompt + i + 1, time.monotonic_ns())))
                if self.itl > 0:
                    loop.call_later(self.itl, emit)
                else:
                    emit()
                return
            t.write(_frame(b"[DONE]") + b"0\r\n\r\n")

        if self.ttft > 0:
            loop.call_later(self.ttft, emit)
        else:
            emit()


def serve_dev(port_file: str, ttft_ms: float, itl_ms: float) -> None:
    """Entry point of the dev server process: listens on an ephemeral port, writes it to ``port_file``."""
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _DevServer(ttft_ms / 1e3, itl_ms / 1e3), "127.0.0.1", 0, backlog=4096, reuse_address=True
        )
        Path(port_file).write_text(str(server.sockets[0].getsockname()[1]))
        await server.serve_forever()

    uvloop.run(main())


# --------------------------------------------------------------------------- server process management


def _simulator_available() -> bool:
    try:
        return importlib.util.find_spec("labkit.embedded.simulators.vllm.__main__") is not None
    except ModuleNotFoundError:
        return False


class Server:
    """A fast streaming server in its own process: the simulator's fast mode, or the dev server."""

    def __init__(self, kind: str, ttft_ms: float = 0.0, itl_ms: float = 0.0) -> None:
        self.kind = kind
        env = {**os.environ, "PYTHONPATH": str(ROOT / "lib")}
        if kind == "sim":
            cmd = [sys.executable, "-m", "labkit.embedded.simulators.vllm", "--fast", "--port", "0",
                   "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "L4",
                   "--ttft-ms", str(ttft_ms), "--itl-ms", str(itl_ms)]  # fmt: skip
            self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            self._pin()
            ready, _, _ = select.select([self.proc.stdout], [], [], 60)
            line = self.proc.stdout.readline().decode().strip() if ready and self.proc.stdout else ""
            if not line.startswith("http"):
                self.stop()
                raise RuntimeError(f"the simulator did not print its URL (got {line!r})")
            self.url = line
        else:
            port_file = f"/tmp/labkit-bench-dev-{os.getpid()}-{time.monotonic_ns()}"
            code = f"import bench_accuracy as b; b.serve_dev({port_file!r}, {ttft_ms}, {itl_ms})"
            env["PYTHONPATH"] += os.pathsep + str(Path(__file__).parent)
            self.proc = subprocess.Popen([sys.executable, "-c", code], env=env)
            self._pin()
            deadline = time.monotonic() + 20
            while not (Path(port_file).exists() and Path(port_file).read_text()):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the dev server did not start")
                time.sleep(0.05)
            port = int(Path(port_file).read_text())
            Path(port_file).unlink()
            self.url = f"http://127.0.0.1:{port}"
        self._wait_ready()

    def _pin(self) -> None:
        if PIN["server"] is not None:
            os.sched_setaffinity(self.proc.pid, {PIN["server"]})
        if PIN["nice"]:
            os.setpriority(os.PRIO_PROCESS, self.proc.pid, PIN["nice"])

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with status {self.proc.returncode}")
            with contextlib.suppress(OSError), urllib.request.urlopen(self.url + "/v1/models", timeout=1) as resp:
                self.model = json.loads(resp.read())["data"][0]["id"]
                return
            time.sleep(0.1)
        raise RuntimeError("server not ready within 60 s")

    def stop(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        if self.proc.poll() is None:
            self.proc.kill()


# --------------------------------------------------------------------------- measurements


def _load() -> str:
    a, b, c = os.getloadavg()
    return f"{a:.2f}/{b:.2f}/{c:.2f}"


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def busy_fraction(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over ``seconds`` (everything on the machine, from /proc/stat)."""
    b0, t0 = _cpu_times()
    time.sleep(seconds)
    b1, t1 = _cpu_times()
    return (b1 - b0) / max(1, t1 - t0)


def wait_quiet(limit: float, max_wait_s: float) -> float:
    """Wait until the machine is less than ``limit`` busy (others' load); returns the last busy share."""
    deadline = time.monotonic() + max_wait_s
    busy = busy_fraction()
    while busy > limit and time.monotonic() < deadline:
        busy = busy_fraction()
    return busy


QUIET = {"limit": 1.0, "wait_s": 0.0}
PIN: dict[str, int | None] = {"server": None, "nice": 0}


def _measure(server: Server, profile: Any, count: int, out_tokens: int, options: RunOptions) -> dict[str, Any]:
    data = bench.synthetic(min(count, 512), input_tokens=32, output_tokens=out_tokens, seed=1)
    ep = bench.Endpoint(url=server.url, model=server.model)
    busy = wait_quiet(QUIET["limit"], QUIET["wait_s"]) if QUIET["wait_s"] else None
    load_before = _load()
    res = bench.run(ep, data, profile, num_requests=count, options=options)
    h, m = res.health, res.metrics
    lag, cpu = h["send_lag_ms"], h["cpu"]
    rd = h["server_receive_delay_ms"] or {}
    dur = m["duration"]
    return {
        "profile": res.header["profile"],
        "requests": count,
        "completed": m["completed"],
        "failed": m["failed"],
        "send_lag_p50_us": lag["p50"] * 1e3,
        "send_lag_p99_us": lag["p99"] * 1e3,
        "send_lag_max_us": lag["max"] * 1e3,
        "scheduled_rate": h["scheduled_rate"],
        "achieved_rate": h["achieved_rate"],
        "rate_error_pct": None if h["rate_error"] is None else h["rate_error"] * 100,
        "cpu_per_request_us": cpu["per_request_us"],
        "cpu_per_event_us": cpu["per_event_us"],
        "cpu_per_request_us_excl_spin": cpu["per_request_us_excl_spin"],
        "cpu_utilization": cpu["utilization"],
        "events": h["events"],
        "event_rate": h["events"] / dur if dur else None,
        "reads": h["reads"],
        "recv_delay_p50_us": rd.get("p50", float("nan")) * 1e3,
        "recv_delay_p99_us": rd.get("p99", float("nan")) * 1e3,
        "loop_lag_p99_us": (h["loop_lag_ms"] or {}).get("p99", float("nan")) * 1e3,
        "saturated": res.client_saturated,
        "reasons": h["reasons"],
        "load_before": load_before,
        "load_after": _load(),
        "machine_busy_before": busy,
        "wake_early_us": h["wake_early_us"],
        "workers": h["workers"],
    }


def _print(row: dict[str, Any]) -> None:
    err = row["rate_error_pct"]
    print(
        f"  {row['profile']:<26} w{row['workers']} done {row['completed']}/{row['requests']} "
        f"lag p50 {row['send_lag_p50_us']:7.1f}us p99 {row['send_lag_p99_us']:8.1f}us "
        f"rate err {'   -   ' if err is None else f'{err:+.3f}%'} "
        f"cpu/req {row['cpu_per_request_us']:6.1f}us (excl spin {row['cpu_per_request_us_excl_spin']:6.1f}) "
        f"cpu/event {row['cpu_per_event_us'] or 0:5.2f}us util {row['cpu_utilization']:.0%} "
        f"events/s {row['event_rate'] or 0:8.0f} recv p50 {row['recv_delay_p50_us']:7.1f}us "
        f"p99 {row['recv_delay_p99_us']:8.1f}us sat {row['saturated']} load {row['load_before']}->{row['load_after']}"
        + ("" if row["machine_busy_before"] is None else f" busy-before {row['machine_busy_before']:.0%}"),
        flush=True,
    )
    for reason in row["reasons"]:
        print(f"      reason: {reason}")


def _rates(server: Server, args: argparse.Namespace, options: RunOptions, rows: dict[str, Any]) -> None:
    print("1. send-time error at constant rates (16-token streamed chat responses)")
    rows["rates"] = []
    for rate in (float(r) for r in args.rates.split(",")):
        for _ in range(args.repeat):
            row = _measure(server, Rate(rate, arrival="constant"), int(rate * args.seconds), 16, options)
            rows["rates"].append(row)
            _print(row)


def _cpu_split(server: Server, args: argparse.Namespace, options: RunOptions, rows: dict[str, Any]) -> None:
    print("2. CPU split: 500 req/s with 16 and 64 output tokens (the slope is the cost of one more event)")
    a = _measure(server, Rate(500, arrival="constant"), int(500 * args.seconds), 16, options)
    b = _measure(server, Rate(500, arrival="constant"), int(500 * args.seconds), 64, options)
    _print(a)
    _print(b)
    cpu_a = a["cpu_per_request_us"] * a["requests"]
    cpu_b = b["cpu_per_request_us"] * b["requests"]
    per_event = (cpu_b - cpu_a) / max(1, b["events"] - a["events"])
    per_request = (cpu_a - per_event * a["events"]) / a["requests"]
    rows["cpu_split"] = {"per_event_us": per_event, "per_request_us": per_request, "runs": [a, b]}
    print(f"   marginal CPU per event {per_event:.2f} us; per request (without its events) {per_request:.1f} us")


def _scale_out(server: Server, args: argparse.Namespace, rows: dict[str, Any]) -> None:
    print("3. scale-out: 2000 requests/s from one process and from two worker processes")
    rows["scale_out"] = []
    for workers in (1, 2):
        opts = RunOptions(wake_early_us=args.wake_early_us, workers=workers)
        row = _measure(server, Rate(2000, arrival="constant"), int(2000 * args.seconds), 16, opts)
        rows["scale_out"].append(row)
        _print(row)


def _ramp(kind: str, args: argparse.Namespace, options: RunOptions, rows: dict[str, Any]) -> None:
    print("4. receive delay at rising event rates (64-token streams, 1 ms between tokens)")
    server = Server(kind, ttft_ms=1.0, itl_ms=1.0)
    rows["ramp"] = []
    best = None
    try:
        for streams in (int(x) for x in args.streams.split(",")):
            count = max(streams * 4, int(streams * args.seconds / 0.07))
            row = _measure(server, Concurrency(streams), count, 64, options)
            row["streams"] = streams
            rows["ramp"].append(row)
            _print(row)
            if row["recv_delay_p99_us"] < 1000 and row["failed"] == 0:
                best = max(best or 0, row["event_rate"])
    finally:
        server.stop()
    rows["max_event_rate_p99_under_1ms"] = best
    print(f"   highest event rate with receive delay p99 < 1 ms: {best or 0:.0f} events/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("auto", "sim", "dev"), default="auto")
    parser.add_argument("--quick", action="store_true", help="2-second runs")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each rate run")
    parser.add_argument("--wake-early-us", type=float, help="fixed timer lead (default: adaptive)")
    parser.add_argument("--rates", default="100,500,1000")
    parser.add_argument("--repeat", type=int, default=1, help="repeat each rate run this many times")
    parser.add_argument("--streams", default="4,8,16,32,48,64,96,128", help="concurrent streams of the ramp")
    parser.add_argument("--skip-split", action="store_true")
    parser.add_argument("--skip-scale-out", action="store_true")
    parser.add_argument("--skip-ramp", action="store_true")
    parser.add_argument("--quiet-limit", type=float, default=0.15, help="wait until others use less than this")
    parser.add_argument("--quiet-wait", type=float, default=0.0, help="wait up to this long for a quiet machine")
    parser.add_argument(
        "--pin", action="store_true", help="pin the client to CPU 0 and the server to the last CPU (Linux)"
    )
    parser.add_argument(
        "--nice", type=int, default=0, help="run client and server at this nice value (negative needs root)"
    )
    parser.add_argument("--json", help="write all rows to this file")
    args = parser.parse_args()
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
        PIN["nice"] = args.nice
    if args.quick:
        args.seconds = 2.0
    QUIET.update(limit=args.quiet_limit, wait_s=args.quiet_wait)
    if args.pin:
        PIN["server"] = max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    kind = args.server if args.server != "auto" else ("sim" if _simulator_available() else "dev")
    options = RunOptions(wake_early_us=args.wake_early_us)
    rows: dict[str, Any] = {"server": kind, "cpu_count": os.cpu_count(), "pinned": args.pin, "nice": args.nice}
    print(
        f"server: {kind}; load avg {_load()}; timerfd {bench.runner.schedule.timerfd_available()}; "
        f"pin {args.pin}; nice {args.nice}"
    )
    server = Server(kind)
    try:
        _rates(server, args, options, rows)
        if not args.skip_split:
            _cpu_split(server, args, options, rows)
        if not args.skip_scale_out:
            _scale_out(server, args, rows)
    finally:
        server.stop()
    if not args.skip_ramp:
        _ramp(kind, args, options, rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
