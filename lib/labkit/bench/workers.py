"""Run a plan in one engine (a thread) or across several worker processes, and merge.

One Python process sends and receives on one core. For more, the schedule is split into
interleaved shares (worker ``w`` of ``W`` takes requests ``w, w+W, w+2W, ...``), each worker
process opens its connections, reports ready, and then all start from one ``t0`` chosen by
the parent: deadlines are absolute ``monotonic_ns`` values, a clock every process on the
machine shares. Workers parse their own records (in parallel) and send back samples; the
merged result computes every percentile from the pooled raw samples, never by averaging
per-worker percentiles.

During a run the engine's thread runs with the garbage collector frozen and disabled
(``gc.freeze()`` then ``gc.disable()``), so no collection pauses land inside the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO

from labkit.bench import stream
from labkit.bench.client import Engine, EngineStats, RawRecord, new_event_loop
from labkit.bench.endpoint import Endpoint
from labkit.bench.metrics import RequestSample
from labkit.errors import ConfigError, LabkitError, WaitTimeout

_mono = time.monotonic_ns

#: Delay between the workers being ready and ``t0``, so every process is waiting when it comes.
START_MARGIN_NS = 50_000_000


@dataclass
class WorkerPlan:
    """Everything one engine needs, picklable for a worker process.

    Attributes:
        endpoint: where to send.
        indices: schedule positions of this worker's requests.
        request_ids: their ``X-Request-ID`` values.
        payloads: their prebuilt HTTP requests.
        offsets_ns: their send offsets from ``t0``.
        input_tokens: the dataset's input token counts (used when the server sends no usage).
        max_concurrency: this worker's share of the concurrency cap (``None``: unlimited).
        warm_connections: connections to open before ``t0``.
        timeout_s: per-request timeout.
        wake_early_ns: timer wake-up lead before each deadline (``None``: adaptive).
        use_timerfd: use the Linux timer (else the portable one).
        poll_us: poll window after reads and before deadlines (see :class:`~labkit.bench.client.Engine`).
        cpus: pin the engine's thread to these CPUs (Linux); a split gives worker ``w`` CPU ``cpus[w]``.
    """

    endpoint: Endpoint
    indices: list[int]
    request_ids: list[str]
    payloads: list[bytes]
    offsets_ns: list[int]
    input_tokens: list[int | None]
    max_concurrency: int | None = None
    warm_connections: int = 16
    timeout_s: float = 600.0
    wake_early_ns: int | None = None
    use_timerfd: bool = True
    poll_us: float = 0.0
    cpus: tuple[int, ...] | None = None


@dataclass
class WorkerOutput:
    """What one engine brings back: parsed samples, its self-measurements and parse time."""

    samples: list[RequestSample]
    stats: EngineStats
    parse_s: float = 0.0
    t0_ns: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def split(plan: WorkerPlan, workers: int) -> list[WorkerPlan]:
    """Interleaved shares of a plan; the concurrency cap and warm pool are divided too."""
    if workers <= 1:
        return [plan]
    out = []
    for w in range(workers):
        idx = slice(w, None, workers)
        cap = None
        if plan.max_concurrency is not None:
            cap = plan.max_concurrency // workers + (1 if w < plan.max_concurrency % workers else 0)
            if cap == 0:
                continue
        out.append(
            WorkerPlan(
                endpoint=plan.endpoint,
                indices=plan.indices[idx],
                request_ids=plan.request_ids[idx],
                payloads=plan.payloads[idx],
                offsets_ns=plan.offsets_ns[idx],
                input_tokens=plan.input_tokens[idx],
                max_concurrency=cap,
                warm_connections=max(1, -(-plan.warm_connections // workers)),
                timeout_s=plan.timeout_s,
                wake_early_ns=plan.wake_early_ns,
                use_timerfd=plan.use_timerfd,
                poll_us=plan.poll_us,
                cpus=(plan.cpus[w % len(plan.cpus)],) if plan.cpus else None,
            )
        )
    return [p for p in out if p.indices]


def _parse(plan: WorkerPlan, records: Sequence[RawRecord]) -> list[RequestSample]:
    api = plan.endpoint.api
    return [
        stream.to_sample(
            plan.indices[k],
            rec.request_id,
            scheduled_ns=rec.scheduled_ns,
            ready_ns=rec.ready_ns,
            sent_ns=rec.sent_ns,
            done_ns=rec.done_ns,
            times=rec.times,
            bufs=rec.bufs,
            client_error=rec.error,
            api=api,
            dataset_input_tokens=plan.input_tokens[k],
        )
        for k, rec in enumerate(records)
    ]


def execute(plan: WorkerPlan, start: Callable[[], int]) -> WorkerOutput:
    """Run one plan on a fresh event loop in the calling thread.

    Args:
        plan: the requests and settings.
        start: called once the connections are open; returns ``t0`` (and may block until then).
    """
    old_cpus = _pin(plan.cpus)
    try:
        return _execute(plan, start)
    finally:
        _pin(old_cpus)


def _pin(cpus: Sequence[int] | None) -> tuple[int, ...] | None:
    """Pin the calling thread to ``cpus`` (Linux; elsewhere nothing); returns the previous set."""
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return None
    old = tuple(os.sched_getaffinity(0))
    try:
        os.sched_setaffinity(0, set(cpus))  # pid 0: the calling thread only
    except OSError as exc:
        raise ConfigError(
            f"cannot pin the benchmark to CPUs {list(cpus)}: {exc}", "pick CPUs this process may use"
        ) from exc
    return old


def _execute(plan: WorkerPlan, start: Callable[[], int]) -> WorkerOutput:
    loop = new_event_loop()
    records = [RawRecord(i, rid, p) for i, rid, p in zip(plan.indices, plan.request_ids, plan.payloads, strict=True)]
    engine = Engine(
        plan.endpoint,
        records,
        plan.offsets_ns,
        max_concurrency=plan.max_concurrency,
        warm_connections=plan.warm_connections,
        timeout_s=plan.timeout_s,
        wake_early_ns=plan.wake_early_ns,
        use_timerfd=plan.use_timerfd,
        poll_us=plan.poll_us,
    )
    try:
        loop.run_until_complete(engine.connect())
        gc.collect()
        gc.freeze()
        was_enabled = gc.isenabled()
        gc.disable()
        t0 = start()
        try:
            stats = loop.run_until_complete(engine.run(t0))
        finally:
            if was_enabled:
                gc.enable()
            gc.unfreeze()
    finally:
        engine.close()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
    p0 = time.perf_counter()
    samples = _parse(plan, records)
    return WorkerOutput(samples, stats, parse_s=time.perf_counter() - p0, t0_ns=t0)


def run_in_thread(plan: WorkerPlan) -> WorkerOutput:
    """Run one plan in a dedicated thread (so it works under a notebook's running loop)."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["out"] = execute(plan, lambda: _mono() + 10_000_000)
        except BaseException as exc:  # re-raised in the caller's thread
            box["err"] = exc

    thread = threading.Thread(target=target, name="labkit-bench", daemon=True)
    thread.start()
    thread.join()
    if "err" in box:
        raise box["err"]  # type: ignore[misc]
    return box["out"]  # type: ignore[return-value]


def _send_msg(stream: IO[bytes], message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("!Q", len(data)) + data)
    stream.flush()


def _recv_msg(stream: IO[bytes]) -> object:
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("the other side closed the channel")
    (size,) = struct.unpack("!Q", head)
    return pickle.loads(stream.read(size))


def serve_stdio() -> None:
    """Worker process side: read a plan on stdin, report ready, wait for ``t0``, run, send the output.

    Started by :func:`run_processes` as ``python -m labkit.bench._worker``; messages are
    length-prefixed pickles on stdin/stdout (stdout is moved to stderr so stray prints go there).
    """
    channel_in = os.fdopen(os.dup(0), "rb")
    channel_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    try:
        plan = _recv_msg(channel_in)
        assert isinstance(plan, WorkerPlan)

        def wait_for_t0() -> int:
            _send_msg(channel_out, ("ready", None))
            return int(_recv_msg(channel_in))  # type: ignore[call-overload]

        _send_msg(channel_out, ("done", execute(plan, wait_for_t0)))
    except BaseException as exc:  # reported to the parent, which raises it
        with contextlib.suppress(OSError):
            _send_msg(channel_out, ("error", f"{type(exc).__name__}: {exc}"))


def _expect(proc: subprocess.Popen[bytes], kind: str, timeout_s: float) -> object:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    if not ready:
        raise WaitTimeout(
            f"a benchmark worker did not answer within {timeout_s:g}s",
            "the machine may be overloaded; use fewer workers",
        )
    try:
        got, payload = _recv_msg(proc.stdout)  # type: ignore[misc]
    except EOFError as exc:
        raise LabkitError(f"a benchmark worker exited (status {proc.poll()})", "see its error output above") from exc
    if got == "error":
        raise LabkitError(f"a benchmark worker failed: {payload}", "see the message above")
    if got != kind:
        raise LabkitError(f"a benchmark worker answered '{got}' instead of '{kind}'", "report this as a bug")
    return payload


def run_processes(plans: Sequence[WorkerPlan], *, ready_timeout_s: float = 60.0) -> list[WorkerOutput]:
    """Run each plan in its own process, all starting from one ``t0``; returns their outputs.

    Workers are plain ``python -m labkit.bench._worker`` processes (not ``multiprocessing``), so
    neither a script without a ``__main__`` guard nor a notebook is re-imported in them.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for plan in plans:
            proc = subprocess.Popen(
                [sys.executable, "-m", "labkit.bench._worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
            )
            procs.append(proc)
            assert proc.stdin is not None
            _send_msg(proc.stdin, plan)
        for proc in procs:
            _expect(proc, "ready", ready_timeout_s)
        t0 = _mono() + START_MARGIN_NS
        for proc in procs:
            assert proc.stdin is not None
            _send_msg(proc.stdin, t0)
        longest = (
            max(p.timeout_s for p in plans) + max((p.offsets_ns[-1] for p in plans if p.offsets_ns), default=0) / 1e9
        )
        return [_expect(proc, "done", longest + 120.0) for proc in procs]  # type: ignore[misc]
    finally:
        for proc in procs:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_plan(plan: WorkerPlan, workers: int = 1) -> list[WorkerOutput]:
    """Run a plan with ``workers`` processes (1 runs in a thread of this process)."""
    if workers <= 1:
        return [run_in_thread(plan)]
    return run_processes(split(plan, workers))
