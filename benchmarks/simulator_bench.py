"""Capacity of the vLLM simulator's fast mode: streamed requests/s and events/s one process sustains.

Starts ``python -m labkit.embedded.simulators.vllm --fast`` in its own process (or uses
``--url``), then, for each requested rate, sends streamed chat completions on a constant
schedule (absolute deadlines) from a lean raw-asyncio HTTP/1.1 client on uvloop with
keep-alive connections, and reports per rate:

- achieved request rate (requests sent over the sending span; all must complete) and
  streamed events/s (JSON events carrying ``sim_sent_ns``);
- receive delay p50/p99: client receive time minus the server's ``sim_sent_ns`` stamp
  (both CLOCK_MONOTONIC), i.e. server write to client read;
- client send lag p50/p99 (actual minus scheduled send) and TTFT p50/p99;
- server and client CPU per request (from /proc and ``time.process_time``).

Usage::

    .venv/bin/python benchmarks/simulator_bench.py --rates 250,500,1000,1500 --duration 5
    .venv/bin/python benchmarks/simulator_bench.py --python-cost   # server Python CPU per request, no sockets

Numbers are for the machine they run on; the client shares it, so at the top rates the
two processes compete for cores (see the CPU columns).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]

STAMP = b'"sim_sent_ns":'
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class RateResult:
    """What one rate step measured."""

    rate: float
    requests: int = 0
    errors: int = 0
    events: int = 0
    recv_delays_ns: list[int] = field(default_factory=list)
    send_lags_ns: list[int] = field(default_factory=list)
    sends_ns: list[int] = field(default_factory=list)
    ttfts_ns: list[int] = field(default_factory=list)
    wall_s: float = 0.0
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0


def pct(values: list[int], q: float) -> float:
    """The q-quantile (nearest rank) in microseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e3


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Client:
    """A minimal HTTP/1.1 keep-alive client for the simulator's SSE responses."""

    def __init__(self, host: str, port: int, model: str, tokens: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        body = json.dumps(
            {
                "model": model,
                "messages": [{"role": "user", "content": "Say something short."}],
                "max_tokens": tokens,
                "ignore_eos": True,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        ).encode()
        self.head = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n" % (host.encode(), port, len(body))
        )
        self.body = body

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle:
            return self.idle.pop()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    async def one(self, rid: int, scheduled_ns: int, result: RateResult) -> None:
        """Send one request at its scheduled time and read its stream."""
        monotonic_ns = time.monotonic_ns
        try:
            reader, writer = await self._connection()
            sent = monotonic_ns()
            writer.write(self.head + b"X-Request-ID: bench-%d\r\n\r\n" % rid + self.body)
            result.send_lags_ns.append(sent - scheduled_ns)
            result.sends_ns.append(sent)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head[:60])
            first = True
            delays = result.recv_delays_ns
            events = 0
            while True:
                size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
                if size == 0:
                    await reader.readexactly(2)
                    break
                data = await reader.readexactly(size + 2)
                now = monotonic_ns()
                i = data.find(STAMP)
                if i < 0:
                    continue
                delays.append(now - int(data[i + 14 : data.index(b"}", i)]))
                events += 1
                if first and b'"content":"' in data and b'"content":""' not in data:
                    result.ttfts_ns.append(now - sent)
                    first = False
            result.events += events
            result.requests += 1
            self.idle.append((reader, writer))
        except (OSError, RuntimeError, asyncio.IncompleteReadError, ValueError):
            result.errors += 1


async def run_rate(client: Client, rate: float, duration: float, server_pid: int | None) -> RateResult:
    """Send ``rate`` requests/s for ``duration`` seconds on absolute deadlines; wait for all to finish."""
    result = RateResult(rate=rate)
    count = max(1, int(rate * duration))
    interval_ns = int(1e9 / rate)
    tasks = []
    cpu0, srv0 = time.process_time(), proc_cpu_seconds(server_pid) if server_pid else 0.0
    start = time.monotonic_ns() + 20_000_000
    loop = asyncio.get_running_loop()
    for i in range(count):
        deadline = start + i * interval_ns
        delay = (deadline - time.monotonic_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(client.one(i, deadline, result)))
    await asyncio.gather(*tasks)
    result.wall_s = (time.monotonic_ns() - start) / 1e9
    result.client_cpu_s = time.process_time() - cpu0
    result.server_cpu_s = (proc_cpu_seconds(server_pid) - srv0) if server_pid else float("nan")
    return result


class _CountingTransport:
    """Stands in for the socket: counts writes (for measuring the server's own Python cost)."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def close(self) -> None:
        pass


def python_cost(args: argparse.Namespace, requests: int = 20_000) -> dict:
    """CPU per streamed request of the fast server's Python code alone (no sockets, no kernel time)."""
    from labkit.embedded.simulators.vllm.config import SimulatorConfig
    from labkit.embedded.simulators.vllm.fastserver import FastHttpProtocol
    from labkit.embedded.simulators.vllm.server import VllmSimulator

    client = Client("127.0.0.1", 0, args.model, args.tokens)
    raw = client.head + b"X-Request-ID: bench-1\r\n\r\n" + client.body

    async def run() -> dict:
        sim = VllmSimulator(
            SimulatorConfig(model=args.model, fast=True, log_requests=False, tokens_per_chunk=args.tokens_per_chunk)
        )
        proto = FastHttpProtocol(sim)
        transport = _CountingTransport()
        proto.connection_made(transport)  # type: ignore[arg-type]
        for _ in range(500):
            proto.data_received(raw)
        transport.writes = 0
        start = time.process_time()
        for _ in range(requests):
            proto.data_received(raw)
        cpu = time.process_time() - start
        return {
            "python_us_per_request": round(cpu / requests * 1e6, 1),
            "writes_per_request": transport.writes / requests,
        }

    return asyncio.run(run())


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    """Launch the simulator in fast mode; returns the process and its URL."""
    cmd = [
        sys.executable,
        "-m",
        "labkit.embedded.simulators.vllm",
        "--model",
        args.model,
        "--fast",
        "--port",
        "0",
        "--ttft-ms",
        str(args.ttft_ms),
        "--itl-ms",
        str(args.itl_ms),
        "--tokens-per-chunk",
        str(args.tokens_per_chunk),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit(f"the simulator did not start: {url!r}")
    return proc, url


async def main_async(args: argparse.Namespace) -> list[dict]:
    proc = None
    if args.url:
        url, pid = args.url, None
    else:
        proc, url = start_server(args)
        pid = proc.pid
    parts = urlsplit(url)
    client = Client(parts.hostname or "127.0.0.1", parts.port or 80, args.model, args.tokens)
    rows = []
    try:
        await run_rate(client, 100, 1.0, pid)  # warm-up: connections, code paths
        for rate in args.rates:
            r = await run_rate(client, rate, args.duration, pid)
            span = (max(r.sends_ns) - min(r.sends_ns)) / 1e9 if len(r.sends_ns) > 1 else 0.0
            achieved = (len(r.sends_ns) - 1) / span if span else 0.0
            rows.append(
                {
                    "requested_rps": rate,
                    "achieved_rps": round(achieved, 1),
                    "completed": r.requests,
                    "events_per_s": round(r.events / r.wall_s, 1) if r.wall_s else 0.0,
                    "errors": r.errors,
                    "recv_delay_p50_us": round(pct(r.recv_delays_ns, 0.5), 1),
                    "recv_delay_p99_us": round(pct(r.recv_delays_ns, 0.99), 1),
                    "send_lag_p50_us": round(pct(r.send_lags_ns, 0.5), 1),
                    "send_lag_p99_us": round(pct(r.send_lags_ns, 0.99), 1),
                    "ttft_p50_ms": round(pct(r.ttfts_ns, 0.5) / 1e3, 3),
                    "ttft_p99_ms": round(pct(r.ttfts_ns, 0.99) / 1e3, 3),
                    "server_cpu_us_per_req": round(r.server_cpu_s / max(1, r.requests) * 1e6, 1),
                    "server_cpu_share": round(r.server_cpu_s / r.wall_s, 3) if r.wall_s else 0.0,
                    "client_cpu_us_per_req": round(r.client_cpu_s / max(1, r.requests) * 1e6, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="250,500,1000,1500", help="comma-separated request rates (req/s)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per rate")
    parser.add_argument("--tokens", type=int, default=16, help="output tokens per request")
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--itl-ms", type=float, default=0.0)
    parser.add_argument("--tokens-per-chunk", type=int, default=1)
    parser.add_argument("--model", default="sim-model")
    parser.add_argument("--url", default=None, help="use a running simulator instead of starting one")
    parser.add_argument(
        "--python-cost", action="store_true", help="only measure the fast server's Python CPU per request (no sockets)"
    )
    args = parser.parse_args()
    if args.python_cost:
        print(json.dumps(python_cost(args)))
        return
    args.rates = [float(r) for r in args.rates.split(",") if r]
    if uvloop is not None:
        uvloop.run(main_async(args))
    else:
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
