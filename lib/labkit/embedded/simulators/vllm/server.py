"""The simulated vLLM server: state, routes and lifecycle, on its own event loop thread.

Routes (as vLLM's OpenAI-compatible server serves them): ``GET /v1/models``,
``POST /v1/completions``, ``POST /v1/chat/completions`` (JSON or server-sent events),
``POST /tokenize``, ``GET /health`` (503 while the model loads), ``GET|POST /ping``,
``GET /version`` and ``GET /metrics``. Every response carries ``X-Request-ID`` (the
client's, or a generated one), and the request log names it.

Two modes:

- model mode (an aiohttp application): requests go through the continuous-batching
  :class:`~.engine.Engine`, whose step times come from the capacity planner's model
  on the shared clock;
- fast mode (:mod:`.fastserver`, a lean HTTP/1.1 protocol on uvloop): no engine; each
  stream waits ``ttft_ms``, then sends a chunk of ``tokens_per_chunk`` tokens every
  ``tokens_per_chunk * itl_ms`` on absolute deadlines, every event stamped with
  ``sim_sent_ns``.

The route logic (:meth:`VllmSimulator.health`, :meth:`~VllmSimulator.models`,
:meth:`~VllmSimulator.prepare` ...) is shared by both front ends and returns plain
:class:`Reply` values.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from aiohttp import web

from labkit.embedded.clock import Clock
from labkit.embedded.simulators.vllm import responses, tokens
from labkit.embedded.simulators.vllm.config import VLLM_VERSION, SimulatorConfig
from labkit.embedded.simulators.vllm.engine import Engine, EngineRequest
from labkit.embedded.simulators.vllm.metrics import CONTENT_TYPE, VllmMetrics
from labkit.embedded.simulators.vllm.perf import PerfModel
from labkit.embedded.simulators.vllm.protocol import (
    ParsedRequest,
    RequestError,
    ServerLimits,
    parse_chat,
    parse_completion,
)
from labkit.embedded.simulators.vllm.tokens import Generation, plan_generation, request_material
from labkit.errors import ConfigError

DEFAULT_MAX_MODEL_LEN = 8192
LOG_BUFFER_LINES = 10_000
REQUEST_ID_HEADER = "X-Request-ID"
JSON_TYPE = "application/json"
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop where uvloop is installed, else the standard one."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class Reply(NamedTuple):
    """A complete, non-streamed answer."""

    status: int
    body: bytes = b""
    content_type: str | None = None


class Job(NamedTuple):
    """A validated generation request on its way to an answer."""

    rid: str
    response_id: str
    parsed: ParsedRequest
    gen: Generation
    arrival_ns: int


class LogBuffer:
    """Lines the server prints, kept for the pod log (thread-safe, bounded).

    Args:
        clock: stamps lines with simulated time.
        sink: receives every line at once instead of the buffer (e.g. ``print`` for the command line).
    """

    def __init__(self, clock: Clock, sink: Callable[[str], None] | None = None) -> None:
        self._clock = clock
        self._lines: collections.deque[str] = collections.deque(maxlen=LOG_BUFFER_LINES)
        self._sink = sink

    def write(self, where: str, message: str) -> None:
        """Log ``message`` as vLLM does: ``INFO MM-DD HH:MM:SS [file] message``."""
        stamp = time.strftime("%m-%d %H:%M:%S", time.gmtime(self._clock.now()))
        self.raw(f"INFO {stamp} [{where}] {message}")

    def raw(self, line: str) -> None:
        """Log a preformatted line."""
        if self._sink is not None:
            self._sink(line)
        else:
            self._lines.append(line)

    def drain(self) -> list[str]:
        """Lines logged since the last call."""
        out = []
        with contextlib.suppress(IndexError):
            while True:
                out.append(self._lines.popleft())
        return out


class VllmSimulator:
    """One simulated vLLM server.

    Args:
        config: what to serve and how.
        clock: the shared simulated clock; a real-time clock by default.
        perf: the performance model; taken from the capacity planner when ``None``
            (not needed in fast mode).
        log_sink: receives each log line as it is written (else :attr:`log` keeps them).

    Raises:
        ConfigError: the planner cannot model this model on this GPU, or the context
            does not fit the KV cache (vLLM refuses to start then, too).
    """

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        clock: Clock | None = None,
        perf: PerfModel | None = None,
        log_sink: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or Clock(1.0)
        self.log = LogBuffer(self.clock, log_sink)
        if perf is None and not config.fast:
            from labkit.embedded.simulators.vllm.perf import perf_from_planner

            perf = perf_from_planner(
                config.model,
                config.gpu,
                tensor_parallel=config.tensor_parallel_size,
                dtype=config.dtype,
                gpu_memory_utilization=config.gpu_memory_utilization,
                max_model_len=config.max_model_len,
            )
        self.perf = perf
        self.max_model_len = self._max_model_len(config, perf)
        self.names = config.served_model_names or (config.model,)
        self.limits = ServerLimits(
            served_model_names=self.names,
            max_model_len=self.max_model_len,
            enable_auto_tool_choice=config.enable_auto_tool_choice,
            tool_call_parser=config.tool_call_parser,
        )
        self.model_json = json.dumps(config.served_model_name).encode()
        self.started_at = self.clock.now()
        self.ready_at = self.started_at + max(0.0, config.load_seconds)
        self.metrics = VllmMetrics(
            config.served_model_name,
            max_model_len=self.max_model_len,
            created=self.started_at,
            cache_info=self._cache_info(),
            show_hidden=config.show_hidden_metrics,
            gauges=self._gauges,
        )
        self.engine: Engine | None = None
        if not config.fast:
            assert perf is not None
            self.engine = Engine(
                perf,
                self.clock,
                self.metrics,
                max_num_batched_tokens=config.max_num_batched_tokens,
                max_num_seqs=config.max_num_seqs,
                log=lambda line: self.log.write("loggers.py:127", line),
            )
        self.in_flight = 0
        self._ids = random.Random(config.seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._fast_server: asyncio.AbstractServer | None = None
        self.port: int | None = None

    # -- configuration ----------------------------------------------------------------------------

    @staticmethod
    def _max_model_len(config: SimulatorConfig, perf: PerfModel | None) -> int:
        planner_len = getattr(perf, "max_model_len", None) if perf is not None else None
        max_len = config.max_model_len or planner_len or DEFAULT_MAX_MODEL_LEN
        if perf is not None and max_len > perf.kv_cache_tokens:
            raise ConfigError(
                f"The model's max seq len ({max_len}) is larger than the maximum number of tokens that can be "
                f"stored in KV cache ({perf.kv_cache_tokens}) of {config.model} on {config.tensor_parallel_size}x "
                f"{config.gpu}",
                "increase gpu_memory_utilization, use more GPUs (tensor parallel) or decrease max_model_len "
                "when initializing the engine",
            )
        return int(max_len)

    def _cache_info(self) -> dict[str, str]:
        if self.perf is None:
            return {}
        block = int(self.perf.block_size)
        return {
            "block_size": str(block),
            "cache_dtype": "auto",
            "gpu_memory_utilization": str(self.config.gpu_memory_utilization),
            "num_gpu_blocks": str(int(self.perf.kv_cache_tokens) // max(1, block)),
            "enable_prefix_caching": "True",
        }

    def _gauges(self) -> tuple[int, int, float]:
        if self.engine is not None:
            return self.engine.gauges()
        return self.in_flight, 0, 0.0

    # -- lifecycle ----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        if self.port is None:
            raise RuntimeError("the simulator is not started")
        return f"http://{self.config.host}:{self.port}"

    def ready(self) -> bool:
        """What ``/health`` says now: the server is up and the model loaded."""
        return self.port is not None and self.clock.now() >= self.ready_at

    async def start_async(self) -> int:
        """Bind and serve on the running loop; returns the port."""
        loop = self._loop = asyncio.get_running_loop()
        self._startup_log()
        if self.config.fast:
            from labkit.embedded.simulators.vllm.fastserver import FastHttpProtocol

            self._fast_server = await loop.create_server(
                lambda: FastHttpProtocol(self),
                self.config.host,
                self.config.port,
                backlog=4096,
                reuse_address=True,
            )
            self.port = int(self._fast_server.sockets[0].getsockname()[1])
        else:
            self._runner = web.AppRunner(
                self.build_app(), access_log=None, handle_signals=False, handler_cancellation=True
            )
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.config.host, self.config.port, backlog=4096, reuse_address=True)
            await site.start()
            self.port = int(self._runner.addresses[0][1])
            assert self.engine is not None
            self.engine.start()
        loop.call_later(self.clock.wall_seconds(self.ready_at - self.clock.now()), self._ready_log)
        return self.port

    async def stop_async(self) -> None:
        """Stop serving (on the server's loop)."""
        if self.engine is not None:
            await self.engine.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._fast_server is not None:
            self._fast_server.close()
            self._fast_server = None

    def start(self) -> int:
        """Start serving on a daemon thread with its own (uv)loop; returns the port."""
        done = threading.Event()
        result: dict[str, Any] = {}

        def run() -> None:
            loop = new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                result["port"] = loop.run_until_complete(self.start_async())
            except BaseException as exc:
                result["error"] = exc
                done.set()
                loop.close()
                return
            done.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.stop_async())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"vllm-sim-{self.config.served_model_name}", daemon=True)
        self._thread.start()
        done.wait()
        if "error" in result:
            self._thread.join(timeout=5)
            self._thread = None
            raise result["error"]
        return int(result["port"])

    def stop(self) -> None:
        """Stop the server and its thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed already
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        self._thread = None
        self.port = None

    # -- logging ------------------------------------------------------------------------------------

    def _startup_log(self) -> None:
        cfg = self.config
        self.log.write("api_server.py:1898", f"vLLM API server version {VLLM_VERSION} (labkit simulator)")
        self.log.write(
            "api_server.py:1899",
            f"args: model={cfg.model!r}, served_model_name={list(self.names)}, "
            f"tensor_parallel_size={cfg.tensor_parallel_size}, max_model_len={self.max_model_len}, "
            f"gpu_memory_utilization={cfg.gpu_memory_utilization}, gpu={cfg.gpu!r}, fast={cfg.fast}",
        )
        if self.perf is not None:
            self.log.write("gpu_model_runner.py:2019", f"Starting to load model {cfg.model}...")

    def _ready_log(self) -> None:
        if self.perf is not None:
            blocks = int(self.perf.kv_cache_tokens) // max(1, int(self.perf.block_size))
            self.log.write("gpu_model_runner.py:2071", f"Model loading took {self.config.load_seconds:.1f} seconds")
            self.log.write("kv_cache_utils.py:1087", f"GPU KV cache size: {int(self.perf.kv_cache_tokens):,} tokens")
            self.log.write(
                "kv_cache_utils.py:1091",
                f"Maximum concurrency for {self.max_model_len:,} tokens per request: "
                f"{self.perf.kv_cache_tokens / self.max_model_len:.2f}x",
            )
            self.log.write("core.py:214", f"init engine (profile, create kv cache, warmup model): {blocks} GPU blocks")
        self.log.write("api_server.py:1971", f"Starting vLLM API server 0 on http://0.0.0.0:{self.port}")
        self.log.raw("INFO:     Application startup complete.")

    def access(self, peer: Any, method: str, path: str, status: int) -> None:
        """One access-log line, as uvicorn writes it (when request logging is on)."""
        if not self.config.log_requests:
            return
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "-"
        self.log.raw(f'INFO:     {where} - "{method} {path} HTTP/1.1" {status} {REASONS.get(status, "")}')

    def log_received(self, job: Job) -> None:
        """vLLM's request-log line, naming the response id and the client's X-Request-ID."""
        if self.config.log_requests:
            parsed = job.parsed
            self.log.write(
                "logger.py:43",
                f"Received request {job.response_id}: prompt_tokens: {parsed.prompt_tokens}, "
                f"max_tokens: {parsed.max_tokens}, stream: {parsed.stream}, X-Request-ID: {job.rid}",
            )

    # -- route logic shared by both front ends ------------------------------------------------------

    def request_id(self, given: str | None) -> str:
        """The client's ``X-Request-ID``, or a new id (deterministic under the server seed)."""
        return given or f"{self._ids.getrandbits(128):032x}"

    def loaded(self) -> bool:
        """The model finished loading (in simulated time)."""
        return self.clock.now() >= self.ready_at

    @staticmethod
    def json_reply(body: Any, status: int = 200) -> Reply:
        """A JSON answer."""
        return Reply(status, json.dumps(body, ensure_ascii=False).encode(), JSON_TYPE)

    @classmethod
    def error_reply(cls, error: RequestError) -> Reply:
        """vLLM's error body for ``error``."""
        body = responses.error_body(error.message, status=error.status, type=error.type, param=error.param)
        return cls.json_reply(body, error.status)

    @staticmethod
    def loading_error() -> RequestError:
        """What API calls get while the model loads."""
        return RequestError(
            "The model is still loading; retry when /health answers 200.", status=503, type="ServiceUnavailableError"
        )

    def health(self) -> Reply:
        """``/health`` and ``/ping``: 200 once loaded, 503 before."""
        return Reply(200 if self.loaded() else 503)

    def version(self) -> Reply:
        """``/version``."""
        return self.json_reply({"version": VLLM_VERSION})

    def metrics_page(self) -> Reply:
        """``/metrics``."""
        return Reply(200, self.metrics.render(), CONTENT_TYPE)

    def models(self) -> Reply:
        """``/v1/models``."""
        if not self.loaded():
            return self.error_reply(self.loading_error())
        return self.json_reply(
            responses.models_body(self.names, self.config.model, self.max_model_len, int(self.started_at))
        )

    def tokenize(self, raw: bytes) -> Reply:
        """``/tokenize``: the prompt's token count under the simulator's token model."""
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise RequestError("the request body must be a JSON object")
            if "messages" in body:
                count = tokens.chat_prompt_tokens(body["messages"], body.get("tools"))
            elif isinstance(body.get("prompt"), str):
                count = tokens.completion_prompt_tokens(body["prompt"])
            else:
                raise RequestError("give `prompt` (a string) or `messages`")
        except RequestError as exc:
            return self.error_reply(exc)
        except (ValueError, TypeError, AttributeError) as exc:
            return self.error_reply(RequestError(f"invalid request: {exc}"))
        return self.json_reply({"count": count, "max_model_len": self.max_model_len, "tokens": list(range(count))})

    def prepare(self, raw: bytes, *, chat: bool, rid: str, arrival_ns: int) -> Job:
        """Validate a generation request and plan its output.

        Raises:
            RequestError: what vLLM would answer instead (400, 404, 503 while loading).
        """
        if not self.loaded():
            raise self.loading_error()
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise RequestError(f"invalid JSON body: {exc}") from exc
        parsed = parse_chat(body, self.limits) if chat else parse_completion(body, self.limits)
        gen = plan_generation(
            request_material(self.config.seed, parsed.seed, parsed.fingerprint),
            max_tokens=parsed.max_tokens,
            min_tokens=parsed.min_tokens,
            ignore_eos=parsed.ignore_eos,
            tool=parsed.tool,
        )
        if parsed.named_tool and gen.finish_reason == "tool_calls":  # OpenAI reports "stop" for a named tool
            gen = dataclasses.replace(gen, finish_reason="stop")
        return Job(rid, ("chatcmpl-" if chat else "cmpl-") + rid, parsed, gen, arrival_ns)

    def full_body(self, job: Job, created: int) -> Reply:
        """The non-streamed answer of a finished job."""
        build = responses.chat_body if job.parsed.chat else responses.completion_body
        body = build(
            response_id=job.response_id,
            created=created,
            model=self.config.served_model_name,
            gen=job.gen,
            prompt_tokens=job.parsed.prompt_tokens,
        )
        return self.json_reply(body)

    def encoder(self, job: Job, created: int, *, stamp: bool) -> responses.StreamEncoder:
        """The byte templates of a job's event stream."""
        return responses.StreamEncoder(
            chat=job.parsed.chat,
            response_id=job.response_id,
            created=created,
            model_json=self.model_json,
            prompt_tokens=job.parsed.prompt_tokens,
            stamp=stamp,
            continuous_usage=job.parsed.continuous_usage,
        )

    def record_fast(self, job: Job, first_ns: int, done_ns: int) -> None:
        """Fast mode's metrics for a finished (or abandoned) request."""
        metrics, parsed, n = self.metrics, job.parsed, job.gen.tokens
        if not first_ns:
            metrics.observe_finished(
                finish_reason="abort",
                prompt_tokens=parsed.prompt_tokens,
                generation_tokens=0,
                max_tokens=parsed.max_tokens,
                e2e=(done_ns - job.arrival_ns) / 1e9,
                queue=0.0,
                prefill=0.0,
                decode=0.0,
            )
            return
        metrics.prompt_tokens += parsed.prompt_tokens
        metrics.prefix_cache_queries += parsed.prompt_tokens
        metrics.generation_tokens += n
        metrics.time_to_first_token.observe((first_ns - job.arrival_ns) / 1e9)
        if n > 1:
            metrics.observe_itl((done_ns - first_ns) / 1e9 / (n - 1), n - 1)
        metrics.observe_finished(
            finish_reason=job.gen.finish_reason if job.gen.finish_reason in ("stop", "length") else "stop",
            prompt_tokens=parsed.prompt_tokens,
            generation_tokens=n,
            max_tokens=parsed.max_tokens,
            e2e=(done_ns - job.arrival_ns) / 1e9,
            queue=0.0,
            prefill=(first_ns - job.arrival_ns) / 1e9,
            decode=(done_ns - first_ns) / 1e9,
        )

    # -- model mode: the aiohttp front end ----------------------------------------------------------

    def build_app(self) -> web.Application:
        """The aiohttp application with vLLM's routes (model mode)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/models", self._aio(lambda request, body: self.models()))
        app.router.add_post("/v1/chat/completions", self._generate_chat)
        app.router.add_post("/v1/completions", self._generate_completion)
        app.router.add_post("/tokenize", self._aio(lambda request, body: self.tokenize(body)))
        app.router.add_get("/health", self._aio(lambda request, body: self.health()))
        app.router.add_get("/ping", self._aio(lambda request, body: self.health()))
        app.router.add_post("/ping", self._aio(lambda request, body: self.health()))
        app.router.add_get("/version", self._aio(lambda request, body: self.version()))
        app.router.add_get("/metrics", self._aio(lambda request, body: self.metrics_page()))
        return app

    def _aio(self, route: Callable[[web.Request, bytes], Reply]) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            rid = self.request_id(request.headers.get(REQUEST_ID_HEADER))
            body = await request.read() if request.can_read_body else b""
            reply = route(request, body)
            if request.path not in ("/health", "/ping", "/metrics"):
                self.access(_peer(request), request.method, request.path, reply.status)
            return self._response(reply, rid)

        return handler

    @staticmethod
    def _response(reply: Reply, rid: str) -> web.Response:
        headers = {REQUEST_ID_HEADER: rid}
        if reply.content_type:
            headers["Content-Type"] = reply.content_type
        return web.Response(status=reply.status, body=reply.body, headers=headers)

    async def _generate_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def _generate_completion(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def _generate(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        arrival_ns = time.monotonic_ns()
        rid = self.request_id(request.headers.get(REQUEST_ID_HEADER))
        try:
            job = self.prepare(await request.read(), chat=chat, rid=rid, arrival_ns=arrival_ns)
        except RequestError as exc:
            self.access(_peer(request), request.method, request.path, exc.status)
            return self._response(self.error_reply(exc), rid)
        assert self.engine is not None
        parsed, gen = job.parsed, job.gen
        self.log_received(job)
        work = EngineRequest(
            request_id=job.response_id,
            prompt_tokens=parsed.prompt_tokens,
            output_tokens=gen.tokens,
            max_tokens=parsed.max_tokens,
            finish_reason=gen.finish_reason,
            arrival=self.clock.now(),
        )
        created = int(self.clock.now())
        self.engine.submit(work)
        try:
            if not parsed.stream:
                while not work.finished:
                    await work.wait()
                if work.aborted:
                    raise asyncio.CancelledError
                self.access(_peer(request), request.method, request.path, 200)
                return self._response(self.full_body(job, created), rid)
            encoder = self.encoder(job, created, stamp=False)
            resp = web.StreamResponse(headers={**responses.SSE_HEADERS, REQUEST_ID_HEADER: rid})
            await resp.prepare(request)
            self.access(_peer(request), request.method, request.path, 200)
            sent = 0
            while True:
                produced, finished = work.generated, work.finished
                if work.aborted:
                    raise ConnectionResetError("request aborted")
                if produced > sent or finished:
                    for event in encoder.events(gen, sent, produced, finished):
                        await resp.write(event)
                    sent = produced
                if finished:
                    break
                await work.wait()
            if parsed.include_usage:
                await resp.write(encoder.usage(sent))
            await resp.write_eof(responses.DONE)
            return resp
        except (asyncio.CancelledError, ConnectionError):
            self.engine.abort(work)
            raise
        finally:
            if self.config.log_requests and work.finished_at is not None:
                self.log.write(
                    "async_llm.py:502",
                    f"Finished request {job.response_id}: finish_reason: {gen.finish_reason}, "
                    f"prompt_tokens: {parsed.prompt_tokens}, completion_tokens: {work.generated}",
                )


def _peer(request: web.Request) -> Any:
    return request.transport.get_extra_info("peername") if request.transport is not None else None


def serve(
    model: str,
    gpu: str = "H100",
    *,
    port: int = 0,
    seed: int = 0,
    fast: bool = False,
    ttft_ms: float = 0.0,
    itl_ms: float = 0.0,
    tokens_per_chunk: int = 1,
    time_scale: float = 1.0,
    host: str = "127.0.0.1",
    perf: PerfModel | None = None,
    clock: Clock | None = None,
    log_sink: Callable[[str], None] | None = None,
    **config: Any,
) -> tuple[int, Callable[[], None]]:
    """Start a simulated vLLM server on a background thread.

    Args:
        model: the model (and served model name unless ``served_model_names`` is given).
        gpu: the GPU the planner models (``A10G``, ``L4``, ``L40S``, ``A100``, ``H100``, ``H200``).
        port: port to bind on ``host``; 0 picks a free one.
        seed: seed of the deterministic output.
        fast: no latency model; stream at ``ttft_ms`` / ``itl_ms`` with ``sim_sent_ns`` stamps.
        ttft_ms: fast mode: time to first token in milliseconds.
        itl_ms: fast mode: delay per output token in milliseconds.
        tokens_per_chunk: fast mode: tokens per streamed chunk.
        time_scale: simulated seconds per wall second (model mode).
        host: address to bind.
        perf: a performance model to use instead of the planner's.
        clock: a shared clock (then ``time_scale`` is ignored).
        log_sink: receives each log line.
        config: further :class:`SimulatorConfig` fields (``served_model_names``, ``max_model_len``,
            ``enable_auto_tool_choice``, ``tool_call_parser``, ``load_seconds``, ``log_requests`` ...).

    Returns:
        The bound port and a function that stops the server.

    Raises:
        ConfigError: invalid settings, or the planner cannot model ``model`` on ``gpu``.
    """
    if fast:
        config.setdefault("log_requests", False)
    cfg = SimulatorConfig(
        model=model,
        gpu=gpu,
        seed=seed,
        fast=fast,
        ttft_ms=ttft_ms,
        itl_ms=itl_ms,
        tokens_per_chunk=tokens_per_chunk,
        host=host,
        port=port,
        **config,
    )
    simulator = VllmSimulator(cfg, clock=clock or Clock(time_scale), perf=perf, log_sink=log_sink)
    bound = simulator.start()
    return bound, simulator.stop
