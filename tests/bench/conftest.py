"""A scripted streaming server for the benchmark's tests (a test double, not the simulator).

It runs an asyncio server on 127.0.0.1 (ephemeral port) in a background thread and answers
``POST /v1/chat/completions`` with a chunked SSE stream shaped the way vLLM streams: a role
chunk with empty content, content chunks carrying ``tokens_per_chunk`` tokens each with
cumulative ``usage`` (``continuous_usage_stats``), a final usage chunk and ``[DONE]``.
Behaviour per request is scripted: fail with HTTP 500, send an error event, hang, or close
mid-stream. It records every request's ``X-Request-ID`` and the peak number in flight.
"""

from __future__ import annotations

import asyncio
import json
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import bench_sim
import pytest


@dataclass
class Script:
    """How the server answers (all times in seconds)."""

    ttft_s: float = 0.0
    itl_s: float = 0.0
    tokens_per_chunk: int = 1
    default_tokens: int = 4
    status_for: Callable[[int], int] = lambda i: 200
    error_event_for: Callable[[int], bool] = lambda i: False
    hang_for: Callable[[int], bool] = lambda i: False
    cut_for: Callable[[int], bool] = lambda i: False
    stop_listening_after: int | None = None
    stamp: bool = True


@dataclass
class Recorded:
    request_ids: list[str] = field(default_factory=list)
    bodies: list[dict] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0


def _frame(obj: dict | str) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
    payload = f"data: {data}\n\n".encode()
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class _Proto(asyncio.Protocol):
    def __init__(self, server: ScriptedServer) -> None:
        self.server = server
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in head.split("\r\n")[1:])}
            length = int(headers.get("content-length", 0))
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            if head.startswith("GET"):
                payload = b'{"object":"list","data":[{"id":"test-model","object":"model"}]}'
                self.transport.write(  # type: ignore[union-attr]
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(payload), payload)
                )
                continue
            rec = self.server.recorded
            index = len(rec.request_ids)
            rec.request_ids.append(headers.get("x-request-id", ""))
            rec.bodies.append(json.loads(body))
            stop = self.server.script.stop_listening_after
            if stop is not None and index + 1 >= stop:
                self.server._server.close()  # no new connections from now on
                self.transport.close()  # type: ignore[union-attr]
                return
            self._respond(index, rec.bodies[-1])

    def _respond(self, index: int, body: dict) -> None:
        script = self.server.script
        rec = self.server.recorded
        t = self.transport
        assert t is not None
        status = script.status_for(index)
        if status != 200:
            payload = json.dumps({"object": "error", "message": "scripted failure", "code": status}).encode()
            t.write(
                b"HTTP/1.1 %d Error\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (status, len(payload), payload)
            )
            return
        if script.hang_for(index):
            return
        rec.in_flight += 1
        rec.peak_in_flight = max(rec.peak_in_flight, rec.in_flight)
        tokens = int(body.get("max_tokens") or script.default_tokens)
        t.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        loop = asyncio.get_running_loop()
        prompt = 7

        def event(delta: dict, done: int, choices: bool = True) -> dict:
            obj: dict = {
                "id": f"chatcmpl-{index}",
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}] if choices else [],
                "usage": {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done},
            }
            if script.stamp:
                obj["sim_sent_ns"] = time.monotonic_ns()
            return obj

        steps: list[bytes | Callable[[], bytes]] = [lambda: _frame(event({"role": "assistant", "content": ""}, 0))]
        done = 0
        while done < tokens:
            k = min(script.tokens_per_chunk, tokens - done)
            done += k
            text = " ".join(["word"] * k)
            steps.append(lambda text=text, done=done: _frame(event({"content": text}, done)))
            if script.error_event_for(index) and done >= 1:
                steps.append(lambda: _frame({"error": {"message": "scripted error event", "code": 500}}))
                break
        steps.append(lambda: _frame(event({}, done, choices=False)))
        steps.append(lambda: _frame("[DONE]") + b"0\r\n\r\n")
        cut = script.cut_for(index)

        def run(i: int) -> None:
            if t.is_closing():
                return
            if cut and i == 2:
                t.close()
                rec.in_flight -= 1
                return
            step = steps[i]
            t.write(step() if callable(step) else step)
            if i + 1 == len(steps):
                rec.in_flight -= 1
                return
            delay = script.ttft_s if i == 0 else script.itl_s
            if delay > 0:
                loop.call_later(delay, run, i + 1)
            else:
                run(i + 1)

        run(0)


class ScriptedServer:
    """The server, its URL and what it recorded."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.recorded = Recorded()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("test server did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await self._loop.create_server(lambda: _Proto(self), "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            self._started.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        def stop() -> None:
            self._server.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(5)


@pytest.fixture
def scripted_server() -> Iterator[Callable[..., ScriptedServer]]:
    """Factory: ``scripted_server(ttft_s=..., ...)`` (fields of :class:`Script`) starts a server, closed after."""
    servers: list[ScriptedServer] = []

    def make(**script: object) -> ScriptedServer:
        server = ScriptedServer(Script(**script))  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture(scope="session")
def simulator() -> Iterator[str]:
    """Base URL of a simulated vLLM server (Llama 3.1 8B on an L4, model mode, time scale 10)."""
    cmd = [
        *(sys.executable, "-m", "labkit.embedded.simulators.vllm", "--port", "0", "--seed", "0"),
        *("--model", bench_sim.MODEL, "--gpu", bench_sim.GPU, "--time-scale", str(bench_sim.SCALE)),
        *("--max-model-len", "8192", "--disable-log-requests"),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline().decode().strip() if ready and proc.stdout else ""
        if not line.startswith("http"):
            proc.kill()
            err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            pytest.fail(f"the simulator did not start: {line!r} {err}")
        yield line
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
