"""The load generator's HTTP/1.1 client: the one performance-critical module of the benchmark.

Everything that runs per request or per streamed event is here, and it does as little as
possible while the run is on:

- Requests are complete HTTP/1.1 byte strings built before the run
  (:func:`labkit.bench.endpoint.build_requests`); sending one is a single ``transport.write``.
- Connections are raw :class:`asyncio.Protocol` objects in a keep-alive pool, opened before the
  run (and refilled in the background when the pool runs low), never one per request.
- ``data_received`` stamps ``time.monotonic_ns()`` first, keeps the raw bytes, and only walks
  the chunked framing with ``bytes.find`` to learn where the response ends. Headers, SSE
  events and JSON are parsed after the run (:mod:`labkit.bench.stream`).
- Sends happen on absolute deadlines from a :class:`~labkit.bench.schedule.PreciseTimer`
  that wakes ``wake_early_ns`` before the deadline, then a spin finishes the wait. No task
  or coroutine is created per request: completions send the next queued request directly.

One :class:`Engine` drives one event loop in one thread; :mod:`labkit.bench.workers` runs
several in separate processes for rates one process cannot drive.
"""

from __future__ import annotations

import asyncio
import collections
import resource
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from labkit.bench.endpoint import Endpoint
from labkit.bench.schedule import PreciseTimer, set_timer_slack_ns
from labkit.errors import Unreachable

_mono = time.monotonic_ns

# Parser states of a connection's current response.
_HEAD, _CHUNKED, _LENGTH, _UNTIL_CLOSE, _TRAILER = range(5)


class RawRecord:
    """One request as the client saw it: timestamps and raw bytes, parsed after the run.

    Attributes:
        index: position in the run's schedule.
        request_id: the ``X-Request-ID`` sent.
        payload: the request bytes.
        scheduled_ns: the deadline it was due to be sent at.
        ready_ns: when it could be sent: the deadline, or when a concurrency slot freed.
        sent_ns: when ``transport.write`` was called.
        done_ns: when the response ended (or failed).
        times: receive time of each socket read.
        bufs: the bytes of each read (headers, chunk framing and all).
        error: why it failed on the client side (connection, timeout), else ``None``.
    """

    __slots__ = ("bufs", "done_ns", "error", "index", "payload", "ready_ns", "request_id", "scheduled_ns", "sent_ns",
                 "times")  # fmt: skip

    def __init__(self, index: int, request_id: str, payload: bytes) -> None:
        self.index = index
        self.request_id = request_id
        self.payload = payload
        self.scheduled_ns = 0
        self.ready_ns = 0
        self.sent_ns = 0
        self.done_ns = 0
        self.times: list[int] = []
        self.bufs: list[bytes] = []
        self.error: str | None = None


@dataclass
class EngineStats:
    """What the engine measured about itself during one run (all times ``monotonic_ns``).

    Attributes:
        t0_ns: start of the run (offset 0 of the schedule).
        end_ns: when the last response ended.
        cpu_ns: CPU time of the engine's thread between ``t0`` and ``end`` (``time.thread_time_ns``).
        spin_ns: part of ``cpu_ns`` spent spinning to hit deadlines precisely.
        reads: socket reads (``data_received`` calls).
        voluntary_switches: context switches while waiting (``getrusage``; Linux only).
        involuntary_switches: preemptions by the kernel (Linux only).
        loop_lag_ns: lateness of a probe timer that fires every ``probe_interval_ns``.
        connections_opened: connections opened, including the warm pool.
        connect_failures: connections that failed to open.
        timer: ``timerfd`` or ``call_at+spin``.
        wake_early_ns: how early the timer was set to wake before each deadline (mean when adaptive).
    """

    t0_ns: int = 0
    end_ns: int = 0
    cpu_ns: int = 0
    spin_ns: int = 0
    reads: int = 0
    voluntary_switches: int = 0
    involuntary_switches: int = 0
    loop_lag_ns: list[int] = field(default_factory=list)
    connections_opened: int = 0
    connect_failures: int = 0
    timer: str = ""
    wake_early_ns: int = 0


class _Conn(asyncio.Protocol):
    """One keep-alive connection; finds response ends, stamps and keeps every read."""

    __slots__ = ("carry", "closed", "engine", "head", "left", "mode", "rec", "reusable", "transport")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.transport: asyncio.Transport | None = None
        self.rec: RawRecord | None = None
        self.mode = _HEAD
        self.head = b""
        self.left = 0
        self.carry = b""
        self.reusable = True
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def start(self, rec: RawRecord) -> None:
        self.rec = rec
        self.mode = _HEAD
        self.head = b""
        self.left = 0
        self.carry = b""

    def data_received(self, data: bytes) -> None:
        t = _mono()
        rec = self.rec
        if rec is None:
            return
        rec.times.append(t)
        rec.bufs.append(data)
        engine = self.engine
        if engine.poll_ns:
            engine._last_io = t
            if not engine._polling:
                engine._start_poll()
        mode = self.mode
        if mode == _CHUNKED:
            done = self._chunks(data, 0)
        elif mode == _HEAD:
            done = self._head(data)
        elif mode == _LENGTH:
            self.left -= len(data)
            done = self.left <= 0
        elif mode == _TRAILER:
            done = self._trailer(data, 0)
        else:
            done = False
        if done:
            engine._finish(self, rec, t)

    def _head(self, data: bytes) -> bool:
        head = self.head + data if self.head else data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            self.head = head
            return False
        self.head = b""
        try:
            status = int(head[9:12])
        except ValueError:
            status = 0
        if 100 <= status < 200:  # informational: the real head follows
            return self._head(head[end + 4 :]) if len(head) > end + 4 else False
        fields = head[:end].lower()
        self.reusable = head.startswith(b"HTTP/1.1") and b"\r\nconnection: close" not in fields
        te = fields.find(b"\r\ntransfer-encoding:")
        if te >= 0 and b"chunked" in _line(fields, te):
            self.mode = _CHUNKED
            return self._chunks(head, end + 4)
        cl = fields.find(b"\r\ncontent-length:")
        if cl >= 0:
            self.mode = _LENGTH
            self.left = int(_line(fields, cl)[17:]) - (len(head) - end - 4)
            return self.left <= 0
        if status in (204, 304):
            return True
        self.mode = _UNTIL_CLOSE
        self.reusable = False
        return False

    def _chunks(self, data: bytes, pos: int) -> bool:
        n = len(data)
        left = self.left
        if left:
            if left >= n - pos:
                self.left = left - (n - pos)
                return False
            pos += left
        if self.carry:
            data = self.carry + data[pos:]
            pos, n = 0, len(data)
            self.carry = b""
        while pos < n:
            eol = data.find(b"\r\n", pos)
            if eol < 0:
                self.carry = data[pos:]
                self.left = 0
                return False
            try:
                size = int(data[pos:eol], 16)
            except ValueError:  # a chunk extension (";name=value") or garbage
                size = int(data[pos:eol].split(b";", 1)[0] or b"0", 16)
            if size == 0:
                self.mode = _TRAILER
                return self._trailer(data, eol)
            pos = eol + 4 + size
        self.left = pos - n
        return False

    def _trailer(self, data: bytes, pos: int) -> bool:
        # From the CRLF that ends the last-chunk line: the body ends at the first empty line.
        buf = self.carry + data[pos:] if self.carry else data[pos:]
        if buf.find(b"\r\n\r\n") >= 0:
            self.carry = b""
            return True
        self.carry = buf
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.engine._lost(self, exc)


def _line(fields: bytes, start: int) -> bytes:
    """The header line starting at ``start`` (which points at its leading CRLF)."""
    end = fields.find(b"\r\n", start + 2)
    return fields[start : end if end >= 0 else len(fields)]


def _fd_limit() -> int:
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return 1024
    return soft if soft > 0 else 1024


class Engine:
    """Sends one run's requests on one event loop and records what comes back.

    Open loop (a request rate): each request is due at ``t0 + offsets[i]``; it goes out on an
    idle connection at its deadline, or waits for a free slot when ``max_concurrency`` is
    reached (its ``ready_ns`` is then when the slot freed). Closed loop (fixed concurrency)
    is the same machinery with every offset 0 and ``max_concurrency`` = the concurrency: a
    completion sends the next request on the same connection within the same callback.

    Args:
        endpoint: where to connect (host, port, TLS).
        records: the run's requests, in schedule order.
        offsets_ns: send offsets from ``t0``, non-decreasing, one per record.
        max_concurrency: most requests in flight; ``None`` is unlimited.
        warm_connections: connections opened before ``t0``.
        timeout_s: a request still unfinished this long after its send fails with a timeout.
        wake_early_ns: the timer wakes this long before a deadline, then spins; ``None`` adapts it
            to the timer's recent lateness (see :meth:`_learn_wake`; starts at 80 µs).
        probe_interval_ns: period of the loop-lag probe.
        use_timerfd: ``False`` forces the portable timer (tests).
        max_connections: cap on open connections (default: the file descriptor limit less 64).
        poll_us: after a socket read, keep the loop polling (no sleep) this long for the next one,
            and yield-spin instead of sleeping when the next deadline is this close. Trades CPU for
            fewer sleep/wake cycles (which cost 15-25 µs each on virtual machines).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        records: list[RawRecord],
        offsets_ns: Sequence[int],
        *,
        max_concurrency: int | None = None,
        warm_connections: int = 16,
        timeout_s: float = 600.0,
        wake_early_ns: int | None = None,
        probe_interval_ns: int = 10_000_000,
        use_timerfd: bool = True,
        max_connections: int | None = None,
        poll_us: float = 0.0,
    ) -> None:
        if len(offsets_ns) != len(records):
            raise ValueError("one offset per record")
        self.endpoint = endpoint
        self.records = records
        self.offsets = list(offsets_ns)
        self.max_concurrency = max_concurrency
        self.warm = max(1, min(warm_connections, max_concurrency or warm_connections, len(records) or 1))
        self.max_connections = max_connections or max(8, _fd_limit() - 64)
        self.timeout_ns = int(timeout_s * 1e9)
        self.adaptive = wake_early_ns is None
        wake_early_ns = 80_000 if wake_early_ns is None else wake_early_ns
        self.wake_early_ns = wake_early_ns
        self._armed_for = 0
        self._wake_lates: list[int] = []
        self._early_sum = wake_early_ns
        self._early_n = 1
        self.spin_ns = wake_early_ns + 20_000
        self.probe_ns = probe_interval_ns
        self.poll_ns = int(poll_us * 1000)
        self.use_timerfd = use_timerfd
        self._polling = False
        self._last_io = 0
        self._probes = 0
        self.stats = EngineStats(wake_early_ns=wake_early_ns)
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if endpoint.scheme == "https" else None
        self._idle: list[_Conn] = []
        self._conns: set[_Conn] = set()
        self._opening = 0
        self._backlog: collections.deque[RawRecord] = collections.deque()
        self._inflight = 0
        self._remaining = len(records)
        self._next = 0
        self._parked = False
        self._t0 = 0
        self._spin_total = 0
        self._done: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: PreciseTimer | None = None
        self._probe: PreciseTimer | None = None
        self._probe_due = 0

    # ----------------------------------------------------------------- setup and run

    async def connect(self) -> None:
        """Open the warm pool; raises :class:`Unreachable` when no connection can be made."""
        self._loop = asyncio.get_running_loop()
        results = await asyncio.gather(*(self._open_one() for _ in range(self.warm)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if len(errors) == len(results):
            raise Unreachable(
                f"cannot connect to {self.endpoint.host}:{self.endpoint.port}: {errors[0]}",
                "check that the model server is running and the URL is right",
            ) from errors[0]

    async def _open_one(self) -> _Conn:
        assert self._loop is not None
        try:
            _, conn = await self._loop.create_connection(
                lambda: _Conn(self),
                self.endpoint.host,
                self.endpoint.port,
                ssl=self._ssl,
                server_hostname=self.endpoint.host if self._ssl else None,
            )
        except OSError:
            self.stats.connect_failures += 1
            raise
        self.stats.connections_opened += 1
        self._conns.add(conn)
        self._idle.append(conn)
        return conn

    async def run(self, t0_ns: int) -> EngineStats:
        """Send every request on schedule from ``t0_ns`` and wait for the last response.

        Call :meth:`connect` first. Lowers the thread's timer slack to 1 µs for the run.
        """
        loop = self._loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self.stats.t0_ns = t0_ns
        self._t0 = t0_ns  # deadlines are t0 + offset, computed as they come (nothing O(n) after t0)
        old_slack = set_timer_slack_ns(1000)
        self._timer = PreciseTimer(loop, self._on_timer, use_timerfd=self.use_timerfd)
        self._probe = PreciseTimer(loop, self._on_probe, use_timerfd=self.use_timerfd)
        self.stats.timer = "timerfd" if self._timer.uses_timerfd else "call_at+spin"
        if not self.records:
            self._done.set_result(None)
        else:
            self._armed_for = t0_ns + self.offsets[0] - self.wake_early_ns
            self._timer.arm(self._armed_for)
            self._probe_due = t0_ns + self.probe_ns
            self._probe.arm(self._probe_due)
        cpu0, ru0 = time.thread_time_ns(), _rusage()
        try:
            await self._done
        finally:
            cpu1, ru1 = time.thread_time_ns(), _rusage()
            self._timer.close()
            self._probe.close()
            if old_slack is not None:
                set_timer_slack_ns(old_slack)
        end = max((r.done_ns for r in self.records), default=t0_ns)
        self.stats.end_ns = end
        self.stats.cpu_ns = cpu1 - cpu0
        self.stats.spin_ns = self._spin_total
        self.stats.wake_early_ns = self._early_sum // self._early_n
        self.stats.reads = sum(len(r.times) for r in self.records)
        self.stats.voluntary_switches = ru1[0] - ru0[0]
        self.stats.involuntary_switches = ru1[1] - ru0[1]
        return self.stats

    def close(self) -> None:
        """Close every connection."""
        for conn in list(self._conns):
            if conn.transport is not None and not conn.closed:
                conn.transport.close()
        self._conns.clear()
        self._idle.clear()

    # ----------------------------------------------------------------- hot path

    def _on_timer(self) -> None:
        now = _mono()
        if self._armed_for:
            if self.adaptive:
                self._learn_wake(now - self._armed_for)
            self._armed_for = 0
        offsets = self.offsets
        records = self.records
        t0 = self._t0
        i = self._next
        n = len(offsets)
        spin = self.spin_ns
        limit = self.max_concurrency
        while i < n:
            if limit is not None and self._inflight + len(self._backlog) >= limit:
                self._parked = True  # the next request goes when a slot frees (see _finish)
                break
            dl = t0 + offsets[i]
            if dl > now:
                if dl - now > spin:
                    break
                spun = now
                while now < dl:
                    now = _mono()
                self._spin_total += now - spun
            rec = records[i]
            rec.scheduled_ns = rec.ready_ns = dl
            self._dispatch(rec)
            i += 1
            now = _mono()
        self._next = i
        if i < n and not self._parked:
            self._schedule(t0 + offsets[i], now)

    def _schedule(self, dl: int, now: int) -> None:
        """Wake for deadline ``dl``: the precise timer, or a yield-spin when it is within the poll window."""
        if self.poll_ns and dl - now <= self.poll_ns + self.wake_early_ns:
            self._loop.call_soon(self._on_timer)  # type: ignore[union-attr]  # yield to I/O, no sleep
        else:
            self._armed_for = dl - self.wake_early_ns
            self._timer.arm(self._armed_for)  # type: ignore[union-attr]

    def _unpark(self, t: int) -> RawRecord | None:
        """The next scheduled request once a slot has freed at ``t``, if it is due; else re-arm the timer."""
        i = self._next
        if i >= len(self.offsets):
            self._parked = False
            return None
        dl = self._t0 + self.offsets[i]
        if dl > t:
            self._parked = False
            self._schedule(dl, t)
            return None
        self._next = i + 1
        rec = self.records[i]
        rec.scheduled_ns = dl
        rec.ready_ns = t  # due earlier, sendable now that a slot freed
        return rec

    def _learn_wake(self, late: int) -> None:
        """Adapt the wake-up lead to the median of the last 32 timer latenesses plus 10 µs (10-200 µs).

        The median, not a high percentile, and a cap: lateness includes time the loop was busy,
        and a lead that chased it would spin more, load the loop more, and chase further.
        """
        ring = self._wake_lates
        ring.append(late)
        if len(ring) >= 32:
            ring.sort()
            self.wake_early_ns = min(max(ring[16] + 10_000, 10_000), 200_000)
            self.spin_ns = self.wake_early_ns + 20_000
            self._early_sum += self.wake_early_ns
            self._early_n += 1
            ring.clear()

    def _dispatch(self, rec: RawRecord) -> None:
        idle = self._idle
        if idle:
            self._send(idle.pop(), rec)
            if len(idle) < 2 + (self._inflight >> 3) and self._opening < 4:
                self._grow()  # keep spare connections ahead of need, opened off the send path
        else:
            self._backlog.append(rec)  # no connection: it waits (and its lag counts against the client)
            self._grow()

    def _send(self, conn: _Conn, rec: RawRecord) -> None:
        self._inflight += 1
        conn.start(rec)
        rec.sent_ns = _mono()
        conn.transport.write(rec.payload)  # type: ignore[union-attr]

    def _finish(self, conn: _Conn, rec: RawRecord, t: int) -> None:
        rec.done_ns = t
        conn.rec = None
        self._inflight -= 1
        self._remaining -= 1
        if conn.reusable and not conn.closed:
            backlog = self._backlog
            nxt = backlog.popleft() if backlog else (self._unpark(t) if self._parked else None)
            if nxt is not None:
                self._send(conn, nxt)  # closed loop: the next request leaves within this callback
            else:
                self._idle.append(conn)
        else:
            self._conns.discard(conn)
            if not conn.closed and conn.transport is not None:
                conn.transport.close()
            self._drain()
        if self._remaining == 0 and self._done is not None and not self._done.done():
            self._done.set_result(None)

    # ----------------------------------------------------------------- slow path

    def _drain(self) -> None:
        """Send waiting and parked requests while connections and slots allow; grow the pool if needed."""
        while self._backlog and self._idle:
            self._send(self._idle.pop(), self._backlog.popleft())
        limit = self.max_concurrency
        while self._parked and self._idle and (limit is None or self._inflight + len(self._backlog) < limit):
            rec = self._unpark(_mono())
            if rec is None:
                break
            self._send(self._idle.pop(), rec)
        if self._parked and not self._idle and limit is not None and self._inflight < limit:
            self._grow()
        if self._backlog:
            self._grow()

    def _grow(self) -> None:
        total = len(self._conns) + self._opening
        limit = self.max_concurrency
        if total >= self.max_connections or (limit is not None and total >= limit):
            return
        self._opening += 1
        assert self._loop is not None
        self._loop.create_task(self._open_later())

    async def _open_later(self) -> None:
        try:
            await self._open_one()
        except OSError as exc:
            self._opening -= 1
            if not self._idle and self._opening == 0 and self._inflight == 0:
                # Nothing in flight will free a connection: the next waiting request fails, then retry.
                rec = self._backlog.popleft() if self._backlog else (self._unpark(_mono()) if self._parked else None)
                if rec is not None:
                    self._fail(rec, f"cannot connect to {self.endpoint.host}:{self.endpoint.port}: {exc}")
                    self._drain()
            return
        self._opening -= 1
        self._drain()

    def _fail(self, rec: RawRecord, error: str) -> None:
        rec.error = error
        rec.done_ns = _mono()
        self._remaining -= 1
        if self._remaining == 0 and self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _lost(self, conn: _Conn, exc: Exception | None) -> None:
        self._conns.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)
        rec = conn.rec
        if rec is None:
            self._drain()
            return
        if conn.mode == _UNTIL_CLOSE:
            self._finish(conn, rec, _mono())
            return
        conn.rec = None
        self._inflight -= 1
        reason = f": {exc}" if exc else ""
        self._fail(rec, f"connection closed before the response ended{reason}")
        self._drain()

    def _check_timeouts(self) -> None:
        now = _mono()
        for conn in list(self._conns):
            rec = conn.rec
            if rec is not None and now - rec.sent_ns > self.timeout_ns:
                conn.rec = None
                self._inflight -= 1
                self._fail(rec, f"timed out after {self.timeout_ns / 1e9:g}s")
                self._conns.discard(conn)
                if conn.transport is not None:
                    conn.transport.abort()
        self._drain()

    def _start_poll(self) -> None:
        self._polling = True
        self._loop.call_soon(self._poll)  # type: ignore[union-attr]

    def _poll(self) -> None:
        if _mono() - self._last_io < self.poll_ns:
            self._loop.call_soon(self._poll)  # type: ignore[union-attr]
        else:
            self._polling = False

    def _on_probe(self) -> None:
        now = _mono()
        self.stats.loop_lag_ns.append(now - self._probe_due)
        self._probes += 1
        if self._probes % 10 == 0:
            self._check_timeouts()  # every ~100 ms; no loop timers during the run (they cost a timer per sleep)
        self._probe_due += self.probe_ns
        if self._probe_due < now:
            self._probe_due = now + self.probe_ns
        if self._done is not None and not self._done.done():
            self._probe.arm(self._probe_due)  # type: ignore[union-attr]


def _rusage() -> tuple[int, int]:
    who = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)
    try:
        ru = resource.getrusage(who)
    except (OSError, ValueError):
        return (0, 0)
    return (ru.ru_nvcsw, ru.ru_nivcsw)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop where available (Linux, macOS), else asyncio's default."""
    if sys.platform != "win32":
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:
            pass
    return asyncio.new_event_loop()
