"""Fast mode's front end: a lean HTTP/1.1 server on an asyncio protocol.

Fast mode exists for load tests of clients (the benchmark needs one process to serve
1000+ streamed requests per second on two cores), so its hot path avoids everything
that costs per request or per event:

- a plain :class:`asyncio.Protocol` (uvloop's C transport underneath) instead of a web
  framework: no request objects, router, middlewares or access-log formatting;
- streams are driven by timer callbacks on absolute deadlines, not one task per request;
- each event is spliced from byte templates made once per request (``responses.py``)
  and goes out as one HTTP chunk in one ``transport.write`` with ``TCP_NODELAY``;
- ``sim_sent_ns`` is read from ``time.monotonic_ns()`` as the event is built, just
  before that write; nothing is logged per event.

It speaks enough HTTP/1.1 for every client the kit uses (httpx/openai, aiohttp,
urllib, curl): keep-alive, pipelined requests answered in order, ``Content-Length``
bodies, ``Expect: 100-continue``, chunked responses (HTTP/1.0 clients get a
close-delimited body). Chunked request bodies are refused with 411.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import socket
import time
from typing import TYPE_CHECKING, cast

from labkit.embedded.simulators.vllm import responses
from labkit.embedded.simulators.vllm.protocol import RequestError
from labkit.embedded.simulators.vllm.server import REASONS, Job, Reply

if TYPE_CHECKING:
    from labkit.embedded.simulators.vllm.server import VllmSimulator

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
# A timer that fires this early (uvloop's clock has millisecond steps) sends at once
# rather than waiting again for less than a timer tick.
EARLY_SEND_NS = 250_000

_GET, _POST = (b"GET", b"HEAD"), (b"POST",)
_ROUTES: dict[bytes, tuple[tuple[bytes, ...], str]] = {
    b"/v1/chat/completions": (_POST, "chat"),
    b"/v1/completions": (_POST, "completion"),
    b"/v1/models": (_GET, "models"),
    b"/health": (_GET, "health"),
    b"/ping": (_GET + _POST, "health"),
    b"/version": (_GET, "version"),
    b"/metrics": (_GET, "metrics"),
    b"/tokenize": (_POST, "tokenize"),
}
_WANTED = {b"content-length", b"transfer-encoding", b"connection", b"x-request-id", b"expect"}

_date_cache: list = [0, b""]


def _date() -> bytes:
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = email.utils.formatdate(now, usegmt=True).encode()
    return _date_cache[1]


class FastHttpProtocol(asyncio.Protocol):
    """One client connection of the fast-mode server.

    Args:
        sim: the simulator whose route logic answers.
    """

    def __init__(self, sim: VllmSimulator) -> None:
        self.sim = sim
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.peer: object = None
        self.busy = False
        self.closed = False
        self.paused = False
        self.keep_alive = True
        self.chunked = True
        self.continue_sent = False
        self.stream: _FastStream | None = None
        self._parsing = False

    # -- asyncio.Protocol ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's transports are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.peer = transport.get_extra_info("peername")

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.stream is not None:
            self.stream.abandon()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.stream is not None:
            self.stream.tick()

    # -- requests ------------------------------------------------------------------------------------

    def _next(self) -> None:
        """Parse and answer complete requests from the buffer, one at a time."""
        self._parsing = True
        try:
            while not self.busy and not self.closed:
                buf = self.buf
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        self._fatal(431, "request headers too large")
                    return
                lines = bytes(buf[:end]).split(b"\r\n")
                try:
                    method, target, version = lines[0].split(b" ")
                except ValueError:
                    self._fatal(400, "malformed request line")
                    return
                headers: dict[bytes, bytes] = {}
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name in _WANTED:
                        headers[name] = value.strip()
                if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
                    self._fatal(411, "chunked request bodies are not supported; send Content-Length")
                    return
                try:
                    length = int(headers.get(b"content-length", b"0"))
                except ValueError:
                    self._fatal(400, "invalid Content-Length")
                    return
                if length > MAX_BODY_BYTES:
                    self._fatal(413, "request body too large")
                    return
                if len(buf) < end + 4 + length:
                    if headers.get(b"expect", b"").lower() == b"100-continue" and not self.continue_sent:
                        self.continue_sent = True
                        self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    return
                body = bytes(buf[end + 4 : end + 4 + length])
                del buf[: end + 4 + length]
                self.continue_sent = False
                connection = headers.get(b"connection", b"").lower()
                self.chunked = version == b"HTTP/1.1"
                self.keep_alive = self.chunked and connection != b"close"
                self.busy = True
                rid = headers.get(b"x-request-id")
                self._dispatch(method, target, body, rid.decode("latin-1") if rid else None)
        finally:
            self._parsing = False

    def _dispatch(self, method: bytes, target: bytes, body: bytes, given_rid: str | None) -> None:
        arrival_ns = time.monotonic_ns()
        sim = self.sim
        rid = sim.request_id(given_rid)
        path = target.split(b"?", 1)[0]
        route = _ROUTES.get(path)
        if route is None:
            self.reply(rid, Reply(404, b'{"detail":"Not Found"}', "application/json"))
            return
        if method not in route[0]:
            self.reply(rid, Reply(405, b'{"detail":"Method Not Allowed"}', "application/json"))
            return
        name = route[1]
        if name in ("chat", "completion"):
            try:
                job = sim.prepare(body, chat=name == "chat", rid=rid, arrival_ns=arrival_ns)
            except RequestError as exc:
                sim.access(self.peer, method.decode(), path.decode("latin-1"), exc.status)
                self.reply(rid, sim.error_reply(exc))
                return
            sim.log_received(job)
            sim.access(self.peer, method.decode(), path.decode("latin-1"), 200)
            if job.parsed.stream:
                self.stream = _FastStream(self, job)
                self.stream.start()
            else:
                _FastFull(self, job).start()
            return
        if name == "health":
            reply = sim.health()
        elif name == "models":
            reply = sim.models()
        elif name == "version":
            reply = sim.version()
        elif name == "metrics":
            reply = sim.metrics_page()
        else:
            reply = sim.tokenize(body)
        self.reply(rid, reply, head_only=method == b"HEAD")

    # -- answers -------------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def head(self, status: int, rid: str, content_type: str | None, length: int | None) -> bytes:
        """The status line and headers of a response (``length=None``: a streamed body)."""
        lines = [b"HTTP/1.1 %d %s" % (status, REASONS.get(status, "").encode()), b"date: " + _date()]
        if content_type:
            lines.append(b"content-type: " + content_type.encode())
        if length is not None:
            lines.append(b"content-length: %d" % length)
        elif self.chunked:
            lines.append(b"transfer-encoding: chunked")
        lines.append(b"x-request-id: " + rid.encode("latin-1", "replace"))
        if not self.keep_alive or (length is None and not self.chunked):
            lines.append(b"connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def reply(self, rid: str, reply: Reply, *, head_only: bool = False) -> None:
        """Send a complete response in one write, then take the next request."""
        body = b"" if head_only else reply.body
        self._write(self.head(reply.status, rid, reply.content_type, len(reply.body)) + body)
        self.done()

    def _fatal(self, status: int, message: str) -> None:
        self.keep_alive = False
        self.busy = True
        body = json.dumps(responses.error_body(message, status=status)).encode()
        self.reply("-", Reply(status, body, "application/json"))

    def done(self) -> None:
        """The current response is complete: close or serve the next pipelined request."""
        self.stream = None
        self.busy = False
        if not self.keep_alive:
            if self.transport is not None:
                self.transport.close()
            self.closed = True
            return
        if self.buf and not self._parsing:
            self._next()


class _FastFull:
    """A non-streamed fast-mode answer, sent when its whole generation would be done."""

    def __init__(self, proto: FastHttpProtocol, job: Job) -> None:
        self.proto, self.job = proto, job

    def start(self) -> None:
        sim, job = self.proto.sim, self.job
        cfg = sim.config
        chunks = -(-job.gen.tokens // cfg.tokens_per_chunk)
        total_ns = int(cfg.ttft_ms * 1e6) + max(0, chunks - 1) * int(cfg.itl_ms * 1e6) * cfg.tokens_per_chunk
        delay = (job.arrival_ns + total_ns - time.monotonic_ns()) / 1e9
        sim.in_flight += 1
        if delay > 0:
            self.proto.loop.call_later(delay, self.finish)
        else:
            self.finish()

    def finish(self) -> None:
        sim, job = self.proto.sim, self.job
        sim.in_flight -= 1
        now = time.monotonic_ns()
        sim.record_fast(job, now, now)
        if not self.proto.closed:
            self.proto.reply(job.rid, sim.full_body(job, int(time.time())))


class _FastStream:
    """One fast-mode event stream, driven by timer callbacks on absolute deadlines."""

    __slots__ = (
        "encoder",
        "first_ns",
        "gap_ns",
        "gen",
        "handle",
        "job",
        "n",
        "next_ns",
        "opens",
        "pending_head",
        "per_chunk",
        "proto",
        "sent",
        "transport",
    )

    def __init__(self, proto: FastHttpProtocol, job: Job) -> None:
        cfg = proto.sim.config
        self.proto = proto
        self.transport = proto.transport
        self.job = job
        self.gen = job.gen
        self.n = job.gen.tokens
        self.per_chunk = cfg.tokens_per_chunk
        self.gap_ns = int(cfg.itl_ms * 1e6) * cfg.tokens_per_chunk
        self.next_ns = job.arrival_ns + int(cfg.ttft_ms * 1e6)
        self.sent = 0
        self.first_ns = 0
        self.opens: list[bytes] | None = None
        self.handle: asyncio.TimerHandle | None = None
        self.encoder = proto.sim.encoder(job, int(time.time()), stamp=True)
        self.pending_head = proto.head(200, job.rid, responses.SSE_HEADERS["Content-Type"], None)

    def start(self) -> None:
        """Send the headers (with the first events when they are due at once) and schedule the rest."""
        self.proto.sim.in_flight += 1
        if self.next_ns - time.monotonic_ns() > EARLY_SEND_NS:
            self.transport.write(self.pending_head)  # type: ignore[union-attr]
            self.pending_head = b""
        self.tick()

    def _send(self, event: bytes) -> None:
        if self.proto.chunked:
            event = b"%x\r\n%b\r\n" % (len(event), event)
        if self.pending_head:
            event = self.pending_head + event
            self.pending_head = b""
        self.transport.write(event)  # type: ignore[union-attr]

    def tick(self) -> None:
        """Send every chunk that is due, then wait for the next deadline or finish."""
        self.handle = None
        proto = self.proto
        if proto.closed or proto.paused:
            return  # abandoned, or resume_writing() calls again
        n, gen, encoder = self.n, self.gen, self.encoder
        monotonic_ns = time.monotonic_ns
        write = self.transport.write  # type: ignore[union-attr]
        # The hot path (plain content chunks, chunked encoding, no per-chunk usage): one bytes
        # format splices the chunk size, the prebuilt event and the stamp taken right before the write.
        simple = gen.tool_call is None and proto.chunked and not encoder.continuous_usage
        text_open, content_json = encoder.text_open, responses.content_json
        stamped_len = responses.STAMPED_END_LEN
        opens = self.opens
        if opens is None and simple and self.per_chunk == 1 and n > 1:
            opens = self.opens = encoder.single_token_opens(gen)
        now = monotonic_ns()
        while self.sent < n and self.next_ns - now <= EARLY_SEND_NS:
            start = self.sent
            end = min(n, start + self.per_chunk)
            if start and simple and not self.pending_head:
                if opens is not None:
                    event = opens[start - 1]
                else:
                    event = text_open(content_json(gen, start, end), gen.finish_reason if end >= n else None)
                stamp = monotonic_ns()
                size = len(event) + stamped_len + len(str(stamp))
                write(b'%x\r\n%b,"sim_sent_ns":%d}\n\n\r\n' % (size, event, stamp))
            else:
                if start == 0:
                    self.first_ns = now
                for event in encoder.events(gen, start, end, end >= n):
                    self._send(event)
            self.sent = end
            self.next_ns += self.gap_ns
            if proto.paused:
                return
            if self.gap_ns:
                now = monotonic_ns()
        if self.sent < n:
            self.handle = proto.loop.call_later((self.next_ns - now) / 1e9, self.tick)
            return
        if self.job.parsed.include_usage:
            self._send(encoder.usage(n))
        done = responses.DONE
        if proto.chunked:
            done = b"%x\r\n%b\r\n0\r\n\r\n" % (len(done), done)
        write(done)
        self._finish()
        proto.done()

    def abandon(self) -> None:
        """The client went away mid-stream."""
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        if self.sent < self.n:
            self._finish(aborted=True)

    def _finish(self, *, aborted: bool = False) -> None:
        sim = self.proto.sim
        sim.in_flight -= 1
        sim.record_fast(self.job, 0 if aborted else self.first_ns, time.monotonic_ns())
        self.sent = self.n
