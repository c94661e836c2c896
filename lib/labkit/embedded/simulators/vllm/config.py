"""The simulator's configuration, and parsing of vLLM's own command-line flags.

A vLLM container is started as ``vllm serve MODEL [flags]`` or
``python -m vllm.entrypoints.openai.api_server --model MODEL [flags]``; the
simulator reads the same flags (``--model``, ``--served-model-name``,
``--tensor-parallel-size``, ``--max-model-len``, ``--gpu-memory-utilization``,
``--enable-auto-tool-choice``, ``--tool-call-parser`` ...) and ignores the
ones that change nothing it simulates.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from labkit.errors import ConfigError

VLLM_VERSION = "0.12.0"
"""The vLLM release whose API shapes and metric names the simulator follows."""

DEFAULT_PORT = 8000
DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything one simulated vLLM server needs.

    Attributes:
        model: the model as vLLM's ``--model`` names it (a Hugging Face id or a path).
        gpu: the GPU name the planner knows (``A10G``, ``L4``, ``H100`` ...).
        served_model_names: names the API answers to; the first is reported. Defaults to ``model``.
        tensor_parallel_size: GPUs the model is sharded over.
        max_model_len: context length; ``None`` lets the planner decide.
        gpu_memory_utilization: share of GPU memory vLLM may use.
        dtype: weights dtype (``auto``, ``bfloat16``, ``fp8`` ...); ``None`` is the model's default.
        max_num_seqs: cap on concurrently running sequences; ``None`` takes the planner's.
        max_num_batched_tokens: token budget of one engine step (chunked prefill).
        enable_auto_tool_choice: ``--enable-auto-tool-choice`` was given.
        tool_call_parser: ``--tool-call-parser`` value, if any.
        seed: seed of the deterministic output.
        fast: drop the latency model and stream at the fixed ``ttft_ms``/``itl_ms``.
        ttft_ms: fast mode: delay before the first content chunk, in milliseconds.
        itl_ms: fast mode: delay per output token between chunks, in milliseconds.
        tokens_per_chunk: fast mode: output tokens per streamed chunk.
        load_seconds: simulated seconds of model loading during which ``/health`` answers 503.
        show_hidden_metrics: also expose metrics vLLM hid after deprecating them
            (``--show-hidden-metrics-for-version``).
        log_requests: log one line per request (vLLM's request log and access log).
        host: address to bind.
        port: port to bind; 0 picks a free one.
    """

    model: str
    gpu: str = "H100"
    served_model_names: tuple[str, ...] = ()
    tensor_parallel_size: int = 1
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    dtype: str | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS
    enable_auto_tool_choice: bool = False
    tool_call_parser: str | None = None
    seed: int = 0
    fast: bool = False
    ttft_ms: float = 0.0
    itl_ms: float = 0.0
    tokens_per_chunk: int = 1
    load_seconds: float = 0.0
    show_hidden_metrics: bool = False
    log_requests: bool = True
    host: str = "127.0.0.1"
    port: int = 0
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("the simulator needs a model name", "pass --model, e.g. --model meta-llama/Llama-3.1-8B")
        if self.tokens_per_chunk < 1:
            raise ConfigError(
                f"tokens_per_chunk must be at least 1, got {self.tokens_per_chunk}", "pass --tokens-per-chunk 1 or more"
            )
        if self.ttft_ms < 0 or self.itl_ms < 0:
            raise ConfigError("ttft_ms and itl_ms cannot be negative", "pass 0 or a positive number of milliseconds")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(
                f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}",
                "pass --gpu-memory-utilization 0.9",
            )
        if self.tensor_parallel_size < 1:
            raise ConfigError("tensor_parallel_size must be at least 1", "pass --tensor-parallel-size 1 or more")
        if self.max_num_batched_tokens < 1:
            raise ConfigError("max_num_batched_tokens must be at least 1", "pass --max-num-batched-tokens 8192")

    @property
    def served_model_name(self) -> str:
        """The name responses and metrics report."""
        return self.served_model_names[0] if self.served_model_names else self.model


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([kKmMgG]?)$")


def _parse_size(text: str) -> int:
    """vLLM accepts ``--max-model-len 32k``, ``1m``, ``8192`` (k = 1000 lowercase, K = 1024)."""
    match = _SIZE.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a token count: {text!r}")
    number, unit = float(match.group(1)), match.group(2)
    factor = {"": 1, "k": 1000, "K": 1024, "m": 1000**2, "M": 1024**2, "g": 1000**3, "G": 1024**3}[unit]
    return int(number * factor)


class _QuietParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"invalid vLLM arguments: {message}", "check the container's command and args")


def vllm_argument_parser(*, prog: str = "vllm serve", quiet: bool = True) -> argparse.ArgumentParser:
    """The subset of vLLM's server flags the simulator honours."""
    cls = _QuietParser if quiet else argparse.ArgumentParser
    parser = cls(prog=prog, add_help=not quiet, allow_abbrev=False)
    parser.add_argument("model_tag", nargs="?", help="model (positional form of `vllm serve MODEL`)")
    parser.add_argument("--model", help="Hugging Face model id or path")
    parser.add_argument("--served-model-name", nargs="+", default=None, help="names the API answers to")
    parser.add_argument("--tensor-parallel-size", "-tp", type=int, default=1)
    parser.add_argument("--max-model-len", type=_parse_size, default=None)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--quantization", "-q", default=None)
    parser.add_argument("--max-num-seqs", type=int, default=None)
    parser.add_argument("--max-num-batched-tokens", type=_parse_size, default=None)
    parser.add_argument("--enable-auto-tool-choice", action="store_true")
    parser.add_argument("--tool-call-parser", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--show-hidden-metrics-for-version", default=None)
    parser.add_argument("--disable-log-requests", action="store_true")
    parser.add_argument("--enable-log-requests", action="store_true")
    parser.add_argument("--disable-uvicorn-access-log", action="store_true")
    return parser


_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand_kube_vars(text: str, env: Mapping[str, str]) -> str:
    """Expand ``$(VAR)`` references the way the kubelet does (``$$(VAR)`` escapes; unknown names stay)."""
    out = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        match = _VAR_REF.match(text, i)
        if match and match.group(1) in env:
            out.append(env[match.group(1)])
            i = match.end()
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def server_argv(command: Sequence[str], args: Sequence[str]) -> list[str]:
    """The vLLM server flags inside a container's ``command`` + ``args``.

    Handles ``vllm serve MODEL ...``, ``python3 -m vllm.entrypoints.openai.api_server ...``,
    ``sh -c "vllm serve ..."`` and the image's own entrypoint (``args`` only).
    """
    words = [*command, *args]
    if len(words) >= 3 and words[0].rsplit("/", 1)[-1] in {"sh", "bash", "dash"} and words[1] in {"-c", "-lc", "-ec"}:
        words = shlex.split(words[2]) + words[3:]
    for i, word in enumerate(words):
        if word.rsplit("/", 1)[-1] == "vllm" and i + 1 < len(words) and words[i + 1] == "serve":
            return words[i + 2 :]
        if word in {"vllm.entrypoints.openai.api_server", "vllm.entrypoints.api_server"}:
            return words[i + 1 :]
        if word == "serve" and i == 0:
            return words[1:]
    return list(args) if command else words


def _normalise_flags(argv: Sequence[str]) -> list[str]:
    """vLLM accepts ``--max_model_len`` for ``--max-model-len``; normalise the spelling."""
    out = []
    for word in argv:
        if word.startswith("--"):
            name, sep, value = word.partition("=")
            out.append(name.replace("_", "-") + sep + value)
        else:
            out.append(word)
    return out


def config_from_vllm_args(argv: Sequence[str], *, gpu: str, **overrides: object) -> SimulatorConfig:
    """Build a :class:`SimulatorConfig` from vLLM server flags.

    Args:
        argv: the flags after ``vllm serve`` (see :func:`server_argv`).
        gpu: the GPU the server runs on.
        overrides: further :class:`SimulatorConfig` fields (seed, load_seconds ...).

    Raises:
        ConfigError: no model was named, or a flag's value is invalid.
    """
    parser = vllm_argument_parser()
    ns, unknown = parser.parse_known_args(_normalise_flags(argv))
    model = ns.model or ns.model_tag
    if not model:
        raise ConfigError(
            "the vLLM container names no model",
            "add the model to the container args: `--model <id>` or `vllm serve <id>`",
        )
    extra = {word: "" for word in unknown if word.startswith("--")}
    fields: dict[str, object] = {
        "model": model,
        "gpu": gpu,
        "served_model_names": tuple(ns.served_model_name or ()),
        "tensor_parallel_size": ns.tensor_parallel_size,
        "max_model_len": ns.max_model_len,
        "gpu_memory_utilization": ns.gpu_memory_utilization,
        "dtype": ns.dtype if ns.quantization is None else ns.quantization,
        "max_num_seqs": ns.max_num_seqs,
        "enable_auto_tool_choice": ns.enable_auto_tool_choice,
        "tool_call_parser": ns.tool_call_parser,
        "seed": ns.seed,
        "show_hidden_metrics": ns.show_hidden_metrics_for_version is not None,
        "log_requests": not ns.disable_log_requests,
        "extra": extra,
    }
    if ns.max_num_batched_tokens is not None:
        fields["max_num_batched_tokens"] = ns.max_num_batched_tokens
    fields.update(overrides)
    return SimulatorConfig(**fields)  # type: ignore[arg-type]
