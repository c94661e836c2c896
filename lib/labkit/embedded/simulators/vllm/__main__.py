"""``python -m labkit.embedded.simulators.vllm``: run a simulated vLLM server in the foreground.

Prints the base URL as the first line on stdout (for scripts), logs on stderr, and
runs until interrupted. Accepts vLLM's own server flags (``--served-model-name``,
``--max-model-len``, ``--enable-auto-tool-choice`` ...) plus the simulator's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from labkit.embedded.clock import Clock
from labkit.embedded.simulators.vllm.config import config_from_vllm_args, vllm_argument_parser
from labkit.embedded.simulators.vllm.server import VllmSimulator, new_event_loop
from labkit.errors import LabkitError

SIMULATOR_FLAGS = {
    "--gpu": {"default": "H100", "help": "GPU the latency model simulates (A10G, L4, L40S, A100, H100, H200)"},
    "--fast": {"action": "store_true", "help": "no latency model: fixed TTFT/ITL, events stamped with sim_sent_ns"},
    "--ttft-ms": {"type": float, "default": 0.0, "help": "fast mode: time to first token (ms)"},
    "--itl-ms": {"type": float, "default": 0.0, "help": "fast mode: delay per output token (ms)"},
    "--tokens-per-chunk": {"type": int, "default": 1, "help": "fast mode: output tokens per streamed chunk"},
    "--time-scale": {"type": float, "default": 1.0, "help": "simulated seconds per wall second (model mode)"},
    "--load-seconds": {"type": float, "default": 0.0, "help": "simulated model loading time (/health is 503)"},
    "--log-requests": {"action": "store_true", "help": "log every request (default in model mode)"},
}


def build_parser() -> argparse.ArgumentParser:
    """vLLM's flags the simulator honours, plus its own."""
    parser = vllm_argument_parser(prog="python -m labkit.embedded.simulators.vllm", quiet=False)
    for flag, options in SIMULATOR_FLAGS.items():
        parser.add_argument(flag, **options)  # type: ignore[arg-type]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGINT or SIGTERM; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ns = build_parser().parse_args(argv)
    try:
        config = config_from_vllm_args(
            _vllm_only(argv),
            gpu=ns.gpu,
            fast=ns.fast,
            ttft_ms=ns.ttft_ms,
            itl_ms=ns.itl_ms,
            tokens_per_chunk=ns.tokens_per_chunk,
            load_seconds=ns.load_seconds,
            log_requests=ns.log_requests or ns.enable_log_requests or (not ns.fast and not ns.disable_log_requests),
            host=ns.host or "127.0.0.1",
            port=ns.port,
        )
        simulator = VllmSimulator(
            config, clock=Clock(ns.time_scale), log_sink=lambda line: print(line, file=sys.stderr, flush=True)
        )
    except LabkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    async def run() -> None:
        await simulator.start_async()
        print(simulator.url, flush=True)
        await stop.wait()
        await simulator.stop_async()

    try:
        loop.run_until_complete(run())
    except OSError as exc:
        print(f"error: cannot serve on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    finally:
        loop.close()
    return 0


def _vllm_only(argv: Sequence[str]) -> list[str]:
    """``argv`` without the simulator's own flags (and their values)."""
    out: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
            continue
        name = word.split("=", 1)[0]
        if name in SIMULATOR_FLAGS:
            skip = "=" not in word and "action" not in SIMULATOR_FLAGS[name]
            continue
        out.append(word)
    return out


if __name__ == "__main__":
    sys.exit(main())
