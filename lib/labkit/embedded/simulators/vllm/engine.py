"""A continuous-batching engine on simulated time, scheduled the way vLLM's V1 engine does it.

Each engine step:

1. schedules the running sequences first (oldest first): a decoding sequence needs one
   token, a sequence still prefilling needs the rest of its prompt, chunked to the step's
   token budget (``max_num_batched_tokens``); a sequence that needs a KV block when none
   is free preempts the newest running sequence (which goes back to the head of the
   queue and later recomputes its prompt and output so far);
2. admits waiting sequences first-come first-served while the token budget, the
   ``max_num_seqs`` cap and free KV blocks allow (none when step 1 had to preempt);
3. lasts the performance model's time for that step: the planner's ``step()`` (one roofline
   over the step's prefill chunks and decodes together) when the model has it, else
   ``prefill_seconds(prefill tokens) + decode_step_seconds(decoding sequences, their summed
   context)``;
4. then every sequence whose KV caught up with its tokens samples one new token,
   which its request handler streams at once.

Time runs on the shared :class:`~labkit.embedded.clock.Clock`: a step of ``dt``
simulated seconds takes ``dt / scale`` wall seconds. Step boundaries sit on an
exact simulated timeline (short event-loop delays are caught up), so the metrics'
latencies are the model's, not the host's.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from labkit.embedded.clock import Clock
from labkit.embedded.simulators.vllm.metrics import VllmMetrics
from labkit.embedded.simulators.vllm.perf import PerfModel

# Event-loop lateness (wall seconds) the engine catches up by running the next step at once;
# a longer stall (a debugger, a suspended laptop) shifts the timeline instead.
CATCH_UP_WALL_SECONDS = 0.02
STATS_LOG_INTERVAL = 10.0


@dataclass(eq=False)
class EngineRequest:
    """One request inside the engine.

    Attributes:
        request_id: the request's id (for logs).
        prompt_tokens: prompt length in tokens.
        output_tokens: tokens the request will generate before it finishes.
        max_tokens: the request's ``max_tokens`` (for the metrics).
        finish_reason: reason reported when the output is complete.
        arrival: simulated time the request arrived.
    """

    request_id: str
    prompt_tokens: int
    output_tokens: int
    max_tokens: int
    finish_reason: str
    arrival: float
    generated: int = 0
    num_computed: int = 0
    blocks: int = 0
    scheduled_at: float | None = None
    first_token_at: float | None = None
    last_token_at: float | None = None
    finished_at: float | None = None
    aborted: bool = False
    prompt_counted: bool = False
    _waiter: asyncio.Future[None] | None = field(default=None, repr=False)

    @property
    def num_tokens(self) -> int:
        """Tokens the sequence holds: prompt plus output so far."""
        return self.prompt_tokens + self.generated

    @property
    def finished(self) -> bool:
        """The request completed or was aborted."""
        return self.finished_at is not None or self.aborted

    async def wait(self) -> None:
        """Wait until the engine produces tokens for this request or it finishes."""
        if self.finished:
            return
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Engine:
    """The scheduler and its step loop; runs on the server's event loop.

    Args:
        perf: the performance model (step times, KV capacity).
        clock: the shared simulated clock.
        metrics: where engine statistics go.
        max_num_batched_tokens: token budget of one step.
        max_num_seqs: running-sequence cap; ``None`` takes the model's.
        log: receives vLLM-style periodic statistics lines.
    """

    def __init__(
        self,
        perf: PerfModel,
        clock: Clock,
        metrics: VllmMetrics,
        *,
        max_num_batched_tokens: int = 8192,
        max_num_seqs: int | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.perf = perf
        self.clock = clock
        self.metrics = metrics
        self.block_size = max(1, int(perf.block_size))
        self.total_blocks = max(1, int(perf.kv_cache_tokens) // self.block_size)
        self.free_blocks = self.total_blocks
        self.max_num_seqs = max(1, int(max_num_seqs or perf.max_num_seqs))
        self.max_num_batched_tokens = max(1, max_num_batched_tokens)
        # The planner's ServingPerf also models a whole mixed step (prefill chunks + decodes) on one roofline.
        self._step = getattr(perf, "step", None)
        self.running: list[EngineRequest] = []
        self.waiting: collections.deque[EngineRequest] = collections.deque()
        self.steps = 0
        self._log = log
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._cursor = 0.0
        self._stats_at = 0.0
        self._stats_prompt = 0
        self._stats_generation = 0

    # -- public ------------------------------------------------------------------------------------

    @property
    def kv_cache_usage(self) -> float:
        """Share of KV cache blocks in use (0..1)."""
        return (self.total_blocks - self.free_blocks) / self.total_blocks

    def gauges(self) -> tuple[int, int, float]:
        """``(running, waiting, kv cache usage)`` for ``/metrics``."""
        return len(self.running), len(self.waiting), self.kv_cache_usage

    def start(self) -> None:
        """Start the step loop on the running event loop."""
        self._wakeup = asyncio.Event()
        self._stats_at = self._cursor = self.clock.now()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="vllm-sim-engine")

    async def stop(self) -> None:
        """Stop the step loop and abort what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for request in [*self.running, *self.waiting]:
            self.abort(request)

    def submit(self, request: EngineRequest) -> None:
        """Queue a request; its handler then awaits :meth:`EngineRequest.wait`."""
        if request.output_tokens <= 0:
            self._finish(request, request.arrival)
            return
        self.waiting.append(request)
        if self._wakeup is not None:
            self._wakeup.set()

    def abort(self, request: EngineRequest) -> None:
        """Drop a request (client went away); frees its KV blocks."""
        if request.finished:
            return
        request.aborted = True
        if request in self.running:
            self.running.remove(request)
        with contextlib.suppress(ValueError):
            self.waiting.remove(request)
        self.free_blocks += request.blocks
        request.blocks = 0
        now = self.clock.now()
        self._record_finished(request, now, "abort")
        request._wake()

    # -- the step loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self.running and not self.waiting:
                if self._stats_prompt or self._stats_generation:
                    self._log_stats(max(self._cursor, self._stats_at + 1e-9))  # the last, partial interval
                self._wakeup.clear()
                await self._wakeup.wait()
                self._cursor = self._stats_at = self.clock.now()
                continue
            batch = self._schedule()
            if not batch:  # nothing fits (cannot happen when prompts fit the cache); back off one step
                await asyncio.sleep(self.clock.wall_seconds(0.001))
                continue
            seconds = self._step_seconds(batch)
            now = self.clock.now()
            # Catch up a short event-loop delay, but never start before a new request arrived.
            start = max(self._cursor, now - CATCH_UP_WALL_SECONDS * self.clock.scale)
            for request, _ in batch:
                if request.scheduled_at is None:
                    start = max(start, request.arrival)
            for request, _ in batch:
                if request.scheduled_at is None:
                    request.scheduled_at = start
            end = start + seconds
            delay = self.clock.wall_seconds(end - now)
            await asyncio.sleep(delay)  # sleep(0) still yields to the request handlers
            self._cursor = end
            self._complete(batch, end)
            self.steps += 1
            self._maybe_log_stats(end)

    def _allocate(self, request: EngineRequest, tokens: int) -> bool:
        needed = math.ceil(tokens / self.block_size) - request.blocks
        if needed <= 0:
            return True
        if needed > self.free_blocks:
            return False
        self.free_blocks -= needed
        request.blocks += needed
        return True

    def _preempt(self, request: EngineRequest) -> None:
        self.free_blocks += request.blocks
        request.blocks = 0
        request.num_computed = 0
        self.waiting.appendleft(request)
        self.metrics.num_preemptions += 1

    def _schedule(self) -> list[tuple[EngineRequest, int]]:
        budget = self.max_num_batched_tokens
        batch: list[tuple[EngineRequest, int]] = []
        preempted = False
        i = 0
        while i < len(self.running) and budget > 0:
            request = self.running[i]
            new = min(request.num_tokens - request.num_computed, budget)
            while not self._allocate(request, request.num_computed + new):
                victim = self.running.pop()
                self._preempt(victim)
                preempted = True
                if victim is request:
                    break
            else:
                batch.append((request, new))
                budget -= new
                i += 1
        while self.waiting and not preempted and budget > 0 and len(self.running) < self.max_num_seqs:
            request = self.waiting[0]
            new = min(request.num_tokens - request.num_computed, budget)
            if not self._allocate(request, request.num_computed + new):
                break
            self.waiting.popleft()
            self.running.append(request)
            batch.append((request, new))
            budget -= new
        return batch

    def _step_seconds(self, batch: list[tuple[EngineRequest, int]]) -> float:
        prefill = prefill_seqs = decode = context = 0
        attention2 = 0.0
        for request, new in batch:
            if new == 1 and request.generated > 0:
                decode += 1
                context += request.num_computed + 1
            else:
                prefill += new
                attention2 += new * (new + 2 * request.num_computed)
                if request.num_computed + new >= request.num_tokens:
                    prefill_seqs += 1
        self.metrics.iteration_tokens.observe(prefill + decode)
        if self._step is not None:  # the planner's roofline of a mixed step
            return max(
                0.0,
                self._step(
                    prefill_tokens=prefill,
                    prefill_seqs=prefill_seqs,
                    prefill_attention_tokens2=attention2,
                    decode_seqs=decode,
                    decode_context_tokens=context,
                ).seconds,
            )
        seconds = 0.0
        if prefill:
            seconds += self.perf.prefill_seconds(prefill)
        if decode:
            seconds += self.perf.decode_step_seconds(decode, context)
        return max(0.0, seconds)

    def _complete(self, batch: list[tuple[EngineRequest, int]], now: float) -> None:
        metrics = self.metrics
        for request, new in batch:
            if request.finished:
                continue
            request.num_computed += new
            if request.num_computed < request.num_tokens:
                continue  # a chunk of a longer prefill
            if not request.prompt_counted:
                request.prompt_counted = True
                metrics.prompt_tokens += request.prompt_tokens
                metrics.prefix_cache_queries += request.prompt_tokens
                self._stats_prompt += request.prompt_tokens
            request.generated += 1
            metrics.generation_tokens += 1
            self._stats_generation += 1
            if request.first_token_at is None:
                request.first_token_at = now
                metrics.time_to_first_token.observe(now - request.arrival)
            else:
                metrics.observe_itl(now - (request.last_token_at or now))
            request.last_token_at = now
            if request.generated >= request.output_tokens:
                self.running.remove(request)
                self.free_blocks += request.blocks
                request.blocks = 0
                self._finish(request, now)
            request._wake()

    def _finish(self, request: EngineRequest, now: float) -> None:
        request.finished_at = now
        self._record_finished(request, now, request.finish_reason)
        request._wake()

    def _record_finished(self, request: EngineRequest, now: float, reason: str) -> None:
        scheduled = request.scheduled_at if request.scheduled_at is not None else now
        first = request.first_token_at if request.first_token_at is not None else now
        self.metrics.observe_finished(
            finish_reason=reason if reason in ("stop", "length", "abort") else "stop",
            prompt_tokens=request.prompt_tokens,
            generation_tokens=request.generated,
            max_tokens=request.max_tokens,
            e2e=now - request.arrival,
            queue=max(0.0, scheduled - request.arrival),
            prefill=max(0.0, first - scheduled),
            decode=max(0.0, now - first),
        )

    def _maybe_log_stats(self, now: float) -> None:
        if now - self._stats_at >= STATS_LOG_INTERVAL:
            self._log_stats(now)

    def _log_stats(self, now: float) -> None:
        """vLLM's periodic engine statistics line (every 10 s while busy, and once when it goes idle)."""
        elapsed = now - self._stats_at
        if self._log is not None:
            self._log(
                f"Engine 000: Avg prompt throughput: {self._stats_prompt / elapsed:.1f} tokens/s, "
                f"Avg generation throughput: {self._stats_generation / elapsed:.1f} tokens/s, "
                f"Running: {len(self.running)} reqs, Waiting: {len(self.waiting)} reqs, "
                f"GPU KV cache usage: {self.kv_cache_usage * 100:.1f}%, Prefix cache hit rate: 0.0%"
            )
        self._stats_at = now
        self._stats_prompt = self._stats_generation = 0
