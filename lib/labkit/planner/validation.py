"""The model's value at each published calibration point, and its error.

``labkit.planner.validation.report()`` recomputes the table in CALIBRATION.md; the tests assert every
point stays within its stated tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit.errors import ConfigError
from labkit.planner.calibration import Point, load_calibration
from labkit.planner.perf import ServingPerf


@dataclass(frozen=True)
class Check:
    """One calibration point with the model's value.

    Attributes:
        point: the published measurement.
        model_value: what the planner predicts for the same setup.
    """

    point: Point

    model_value: float

    @property
    def error(self) -> float:
        """Relative error of the model: ``model / published - 1``."""
        return self.model_value / self.point.published - 1

    @property
    def ok(self) -> bool:
        """Whether the error is within the point's tolerance."""
        return abs(self.error) <= self.point.tolerance


def _perf(point: Point) -> ServingPerf:
    s = point.setup
    kwargs: dict[str, object] = {}
    for key in ("dtype", "max_model_len", "max_num_seqs", "gpu_memory_utilization", "interconnect"):
        if key in s:
            kwargs[key] = s[key]
    return ServingPerf.from_names(point.model, point.gpu, point.tensor_parallel, **kwargs)  # type: ignore[arg-type]


def model_value(point: Point) -> float:
    """The planner's value for ``point``'s setup, in the point's unit.

    Raises:
        ConfigError: the point's ``kind`` is unknown.
    """
    perf = _perf(point)
    s = point.setup
    if point.kind == "kv_tokens":
        return float(perf.kv_cache_tokens)
    if point.kind in ("tpot_ms", "ttft_ms"):
        prediction = perf.predict(int(s["concurrency"]), int(s["prompt_tokens"]), int(s["output_tokens"]))
        return prediction.tpot_ms if point.kind == "tpot_ms" else prediction.ttft_ms
    if point.kind == "throughput_ratio":
        prompt, output = int(s["prompt_tokens"]), int(s["output_tokens"])
        high = perf.predict(int(s["concurrency"]), prompt, output).output_throughput
        low = perf.predict(int(s["base_concurrency"]), prompt, output).output_throughput
        return high / low
    if point.kind == "batch_latency_ms":
        batch, prompt, output = int(s["batch_size"]), int(s["prompt_tokens"]), int(s["output_tokens"])
        seconds = perf.step(
            prefill_tokens=batch * prompt, prefill_seqs=batch, prefill_attention_tokens2=batch * prompt**2
        ).seconds
        for generated in range(1, output):
            seconds += perf.decode_step_seconds(batch, batch * (prompt + generated))
        return seconds * 1000
    raise ConfigError(f"calibration point {point.id}: unknown kind {point.kind!r}", "fix data/calibration.yaml")


def checks() -> list[Check]:
    """Every calibration point with the model's value."""
    return [Check(point, model_value(point)) for point in load_calibration().points]


def report() -> str:
    """The calibration table as Markdown (the one in CALIBRATION.md)."""
    lines = [
        "| point | GPU | model | published | model | error | tolerance |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in checks():
        p = c.point
        lines.append(
            f"| {p.id} | {p.tensor_parallel}x {p.gpu} | {p.model} | {p.published:g} | {c.model_value:.4g} | "
            f"{c.error:+.1%} | ±{p.tolerance:.0%} |"
        )
    return "\n".join(lines)
