"""``labkit bench run|sweep|compare``: the benchmark from a terminal (and inside the in-cluster Job).

Wire into the top-level CLI with :func:`add_parser`; ``python -m labkit.bench`` runs the same
commands without the rest of the kit's CLI (that is what the Job's container calls).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError, LabkitError


def _rate(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("the rate must be positive (or 'inf')")
    return value


def _slo(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError("write an SLO as NAME=MS, e.g. ttft_ms=500")
    try:
        return key.strip(), float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"SLO value '{value}' is not a number") from exc


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("endpoint")
    g.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:8000")
    g.add_argument("--model", help="model name (default: the first one /v1/models lists)")
    g.add_argument("--api", choices=("chat", "completions"), default="chat", help="which API (default chat)")
    g.add_argument(
        "--backend",
        choices=("vllm", "openai"),
        default="vllm",
        help="vllm: exact output lengths via ignore_eos/min_tokens and per-chunk usage; openai: standard fields",
    )
    g.add_argument("--api-key-env", metavar="NAME", help="read the API key from this environment variable")
    g = p.add_argument_group("dataset")
    g.add_argument("--dataset", default="synthetic", help="synthetic (default), sharegpt:PATH or jsonl:PATH")
    g.add_argument("--input-tokens", type=int, default=128, help="synthetic prompt length (default 128)")
    g.add_argument("--output-tokens", type=int, default=128, help="output tokens to ask for (default 128)")
    g.add_argument("--num-requests", type=int, help="requests per run (default 100, or rate x --duration)")
    g.add_argument("--seed", type=int, default=0, help="seeds prompts and arrivals (default 0)")
    g = p.add_argument_group("measurement")
    g.add_argument("--slo", type=_slo, action="append", default=[], metavar="NAME=MS", help="ttft_ms, tpot_ms, e2el_ms")
    g.add_argument("--percentiles", type=_floats, default=(50, 90, 95, 99), help="default 50,90,95,99")
    g.add_argument("--workers", type=int, default=1, help="client processes (default 1)")
    g.add_argument("--timeout", type=float, default=600.0, help="per-request timeout in seconds (default 600)")
    g.add_argument("--wake-early-us", type=float, help="timer lead before each deadline (default: adaptive)")
    g.add_argument("--poll-us", type=float, default=0.0, help="keep polling this long after each read (default 0)")
    g.add_argument("--cpus", type=_ints, help="pin the client to these CPUs, one per worker (Linux), e.g. 0,1")
    g.add_argument("--label", help="a label stored in the result")
    g = p.add_argument_group("cost")
    g.add_argument("--price-per-hour", type=float, help="serving pool USD/hour, for cost per token")
    g.add_argument("--instance-type", help="take the price from the planner's catalog for this instance type")
    g.add_argument("--instances", type=int, default=1, help="instances in the pool (with --instance-type)")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``bench`` with ``run``, ``sweep`` and ``compare`` to a CLI's subparsers; returns the ``bench`` parser."""
    bench = subparsers.add_parser("bench", help="benchmark an OpenAI-compatible model server")
    _add_actions(bench.add_subparsers(dest="bench_command", required=True, metavar="ACTION"))
    return bench


def build_parser() -> argparse.ArgumentParser:
    """A standalone parser (``python -m labkit.bench run|sweep|compare``) with the same actions."""
    parser = argparse.ArgumentParser(
        prog="python -m labkit.bench", description="Benchmark an OpenAI-compatible server."
    )
    _add_actions(parser.add_subparsers(dest="bench_command", required=True, metavar="ACTION"))
    return parser


def _add_actions(sub: Any) -> None:
    p = sub.add_parser("run", help="one run with a fixed concurrency or a request rate")
    _common(p)
    prof = p.add_mutually_exclusive_group(required=True)
    prof.add_argument("--concurrency", type=int, help="closed loop: requests kept in flight")
    prof.add_argument("--rate", type=_rate, help="open loop: requests per second ('inf': all at once)")
    p.add_argument("--burstiness", type=float, default=1.0, help="gamma shape of arrivals; 1 = Poisson (default)")
    p.add_argument("--arrival", choices=("gamma", "poisson", "constant"), default="gamma")
    p.add_argument("--max-concurrency", type=int, help="cap on requests in flight with --rate")
    p.add_argument("--duration", type=float, help="with --rate: send for this many seconds")
    p.add_argument("--output", "-o", help="write the result JSON here")
    p.add_argument("--details", action="store_true", help="include one row per request (with X-Request-ID)")
    p.add_argument("--plots", metavar="DIR", help="write TTFT/TPOT distribution and send-lag PNGs here")
    p.add_argument("--emit-markers", action="store_true", help="print the result JSON between markers (in-cluster)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sweep", help="synchronous, max throughput and rates between; or concurrency levels")
    _common(p)
    p.add_argument("--mode", choices=("rate", "concurrency"), default="rate")
    p.add_argument("--steps", type=int, default=5, help="runs of a rate sweep, including both ends (default 5)")
    p.add_argument("--levels", type=_ints, help="concurrency levels, e.g. 1,2,4,8 (mode concurrency)")
    p.add_argument("--max-concurrency", type=int, default=64, help="concurrency of the max-throughput run")
    p.add_argument("--output-dir", help="write every run's JSON, sweep.json and the plot here")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("compare", help="two result files side by side with deltas")
    p.add_argument("a", help="first result JSON")
    p.add_argument("b", help="second result JSON")
    p.add_argument("--names", nargs=2, default=("A", "B"), metavar=("A", "B"), help="column names")
    p.set_defaults(func=cmd_compare)


# --------------------------------------------------------------------------- commands


def _options(args: argparse.Namespace) -> Any:
    from labkit.bench.runner import RunOptions

    return RunOptions(
        workers=args.workers,
        timeout_s=args.timeout,
        wake_early_us=args.wake_early_us,
        percentiles=tuple(args.percentiles),
        label=args.label,
        poll_us=args.poll_us,
        cpus=tuple(args.cpus) if args.cpus else None,
    )


def _endpoint(args: argparse.Namespace) -> Any:
    from labkit.bench.endpoint import Endpoint
    from labkit.bench.runner import discover_model

    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ConfigError(f"environment variable {args.api_key_env} is empty", "export the API key there")
    model = args.model or discover_model(args.url, api_key=api_key)
    return Endpoint(url=args.url, model=model, api=args.api, backend=args.backend, api_key=api_key)


def _dataset(args: argparse.Namespace, count: int) -> Any:
    from labkit.bench import datasets

    return datasets.load(
        args.dataset, count=count, seed=args.seed, input_tokens=args.input_tokens, output_tokens=args.output_tokens
    )


def _cost(args: argparse.Namespace, result: Any) -> Any:
    from labkit.bench import cost

    if args.instance_type:
        price, source = cost.pool_price(args.instance_type, args.instances)
    elif args.price_per_hour is not None:
        price, source = args.price_per_hour, "given"
    else:
        return None
    return cost.from_result(result, price, source=source)


def cmd_run(args: argparse.Namespace) -> int:
    from labkit.bench import job, plots
    from labkit.bench.runner import Concurrency, Rate, run

    profile = (
        Concurrency(args.concurrency)
        if args.concurrency is not None
        else Rate(args.rate, burstiness=args.burstiness, arrival=args.arrival, max_concurrency=args.max_concurrency)
    )
    count = args.num_requests
    if count is None:
        count = (
            math.ceil(args.rate * args.duration) if args.duration and args.rate and math.isfinite(args.rate) else 100
        )
    endpoint = _endpoint(args)
    result = run(
        endpoint,
        _dataset(args, count),
        profile,
        num_requests=count,
        slos=dict(args.slo),
        seed=args.seed,
        options=_options(args),
    )
    estimate = _cost(args, result)
    if estimate is not None:
        result.metadata["cost"] = estimate.to_dict()
    out = sys.stderr if args.emit_markers else sys.stdout
    print(result.table(), file=out)
    if estimate is not None:
        print(
            f"{'usd_per_1M_output_tokens':<28} {estimate.usd_per_million_output_tokens}\n"
            f"{'usd_per_1k_requests':<28} {estimate.usd_per_thousand_requests}",
            file=out,
        )
    if args.output:
        print(f"result: {result.save(args.output, details=args.details)}", file=out)
    if args.plots:
        folder = Path(args.plots)
        plots.distributions(result, path=folder / "distributions.png")
        plots.send_lag(result, path=folder / "send_lag.png")
        print(f"plots: {folder}/distributions.png, {folder}/send_lag.png", file=out)
    if args.emit_markers:
        print(job.wrap_result(result.to_dict(details=args.details)), flush=True)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from labkit.bench import plots
    from labkit.bench.runner import sweep

    count = args.num_requests or 100
    endpoint = _endpoint(args)
    result = sweep(
        endpoint,
        _dataset(args, count),
        mode=args.mode,
        steps=args.steps,
        levels=args.levels,
        max_concurrency=args.max_concurrency,
        num_requests=count,
        slos=dict(args.slo),
        seed=args.seed,
        options=_options(args),
    )
    print(result.table())
    if args.output_dir:
        folder = Path(args.output_dir)
        for i, r in enumerate(result.results):
            r.save(folder / f"run-{i:02d}.json")
        (folder / "sweep.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        plots.latency_vs_throughput(result.results, path=folder / "latency_vs_throughput.png")
        print(f"results and plot: {folder}/")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from labkit.bench.compare import compare, format_table
    from labkit.bench.result import load

    print(format_table(compare(load(args.a), load(args.b)), names=tuple(args.names)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m labkit.bench``."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except LabkitError as exc:
        print(f"labkit bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("labkit bench: interrupted", file=sys.stderr)
        return 130
