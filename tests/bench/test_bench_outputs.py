"""Result JSON field names, compare, cost and the in-cluster Job manifest."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest

from labkit.bench import cost, job
from labkit.bench.client import EngineStats
from labkit.bench.compare import compare, format_table
from labkit.bench.datasets import synthetic
from labkit.bench.metrics import RequestSample
from labkit.bench.result import BenchResult, load
from labkit.bench.runner import Concurrency, Rate, assemble
from labkit.bench.workers import WorkerOutput
from labkit.errors import ConfigError, Invalid

MS = 1_000_000

#: Fields ``vllm bench serve --save-result`` writes that a result must have under the same names.
VLLM_FIELDS = [
    "date", "backend", "endpoint_type", "label", "model_id", "num_prompts", "request_rate", "burstiness",
    "max_concurrency", "duration", "completed", "failed", "total_input_tokens", "total_output_tokens",
    "request_throughput", "request_goodput", "output_throughput", "total_token_throughput",
    "max_output_tokens_per_s", "max_concurrent_requests",
    *(f"{stat}_{m}_ms" for m in ("ttft", "tpot", "itl", "e2el") for stat in ("mean", "median", "std", "p99")),
]  # fmt: skip


def fake_result(profile: Rate | Concurrency, *, ttft_ms: float = 100.0, n: int = 4) -> BenchResult:
    samples = []
    for i in range(n):
        sent = i * 10 * MS
        chunks = [sent + int((ttft_ms + 10 * k) * MS) for k in range(3)]
        samples.append(
            RequestSample(
                i,
                f"run-{i}",
                sent,
                sent,
                sent + 5000,
                chunks[-1],
                True,
                chunk_ns=chunks,
                chunk_chars=[3, 3, 3],
                output_tokens=3,
                input_tokens=12,
                events=5,
                reads=4,
            )
        )
    samples.append(RequestSample(n, f"run-{n}", 0, 0, 10, 20, False, error="HTTP 500: boom"))
    stats = EngineStats(t0_ns=0, end_ns=max(s.done_ns for s in samples), cpu_ns=2_000_000, reads=16)
    out = WorkerOutput(samples=samples, stats=stats, t0_ns=0)
    from labkit.bench.endpoint import Endpoint

    ep = Endpoint("http://127.0.0.1:9", "test-model")
    return assemble([out], endpoint=ep, dataset=synthetic(2, input_tokens=4, output_tokens=3), profile=profile,
                    slos={"ttft_ms": 150})  # fmt: skip


def test_result_json_uses_vllm_field_names_and_keeps_definitions(tmp_path: Path) -> None:
    result = fake_result(Rate(5.0))
    doc = json.loads(result.to_json())
    missing = [f for f in VLLM_FIELDS if f not in doc]
    assert not missing, missing
    assert doc["completed"] == 4
    assert doc["failed"] == 1
    assert doc["request_rate"] == 5.0
    assert doc["endpoint_type"] == "openai-chat"
    assert doc["model_id"] == "test-model"
    assert doc["mean_ttft_ms"] == pytest.approx(99.995, abs=1e-6)  # chunk 100 ms after the deadline, sent 5 us late
    assert set(doc["definitions"]) >= {"ttft", "tpot", "itl", "e2el", "goodput", "send_lag"}
    assert set(doc["metadata"]) >= {"endpoint", "dataset", "profile"}
    assert "client_saturated" in doc
    assert "requests" not in doc


def test_details_carry_request_ids_and_round_trip(tmp_path: Path) -> None:
    result = fake_result(Concurrency(2))
    path = result.save(tmp_path / "r.json", details=True)
    doc = json.loads(path.read_text())
    assert doc["request_rate"] == "inf"
    assert doc["max_concurrency"] == 2
    assert [r["request_id"] for r in doc["requests"]] == [f"run-{i}" for i in range(5)]
    again = load(path)
    assert again.metrics["mean_ttft_ms"] == pytest.approx(result.metrics["mean_ttft_ms"])
    assert [s.ttft_s for s in again.samples] == pytest.approx([s.ttft_s for s in result.samples], abs=1e-6)


def test_load_rejects_other_files(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"hello": 1}')
    with pytest.raises(ConfigError, match="not a benchmark result"):
        load(tmp_path / "x.json")


def test_compare_puts_two_results_side_by_side() -> None:
    a, b = fake_result(Rate(5.0), ttft_ms=100.0), fake_result(Rate(5.0), ttft_ms=120.0)
    rows = {r.field: r for r in compare(a, b)}
    assert rows["mean_ttft_ms"].delta == pytest.approx(20.0)
    assert rows["mean_ttft_ms"].delta_pct == pytest.approx(20.0 / 99.995 * 100)
    assert rows["mean_ttft_ms"].better == "a"  # lower latency is better
    assert rows["completed"].delta == 0
    assert rows["completed"].better == ""
    text = format_table(list(rows.values()), names=("base", "new"))
    assert "mean_ttft_ms" in text
    assert "+20.000" in text


def test_cost_per_token_arithmetic() -> None:
    est = cost.estimate(3.6, output_tokens_per_s=1000.0, requests_per_s=4.0)
    assert est.usd_per_million_output_tokens == pytest.approx(1.0)  # $0.001/s for 1000 tok/s
    assert est.usd_per_thousand_requests == pytest.approx(0.25)
    assert cost.estimate(1.0, 0.0, 0.0).usd_per_million_output_tokens is None
    with pytest.raises(ConfigError):
        cost.estimate(-1.0, 1.0, 1.0)


def test_cost_from_a_result_with_an_aws_layer_price() -> None:
    prices = pytest.importorskip("labkit.aws.prices")
    price = prices.fallback_price("g6.xlarge", "us-east-1")
    assert price is not None
    result = fake_result(Rate(5.0))
    est = cost.from_result(result, price, count=2)
    per_s = 2 * price.usd_per_hour / 3600
    assert est.price_per_hour == pytest.approx(2 * price.usd_per_hour)
    assert est.usd_per_million_output_tokens == pytest.approx(per_s / result.metrics["output_throughput"] * 1e6)
    assert est.source.startswith("2 x g6.xlarge on-demand")
    assert cost.from_result(result.to_dict(), 1.5).price_per_hour == 1.5


def test_cost_from_catalog_and_comparison_with_a_prediction() -> None:
    price, source = cost.pool_price("g6.xlarge", 2)
    assert price > 0
    assert "g6.xlarge" in source
    measured = {"output_throughput": 500.0, "request_throughput": 2.0, "mean_ttft_ms": 120.0}
    comp = cost.compare_with_prediction(
        measured, {"output_throughput": 1000.0, "mean_ttft_ms": 100.0}, price_per_hour=3.6
    )
    rows = {name: (m, p, r) for name, m, p, r in comp.rows}
    assert rows["output tokens/s"] == (500.0, 1000.0, 0.5)
    assert rows["$/1M output tokens"][0] == pytest.approx(2.0)
    assert rows["$/1M output tokens"][1] == pytest.approx(1.0)
    assert rows["requests/s"] == (2.0, None, None)
    assert comp.notes
    assert "mean TTFT (ms)" in comp.table()


def test_planner_prediction_for_a_result() -> None:
    result = fake_result(Concurrency(2))
    pred = cost.planner_prediction(result, "meta-llama/Llama-3.1-8B-Instruct", "L4", max_model_len=8192)
    assert pred.concurrency == 2
    assert pred.prompt_tokens == 12
    assert pred.output_tokens == 3
    assert cost.compare_with_prediction(result.to_dict(), pred).rows


def manifest(**kw) -> dict:
    args = {
        "name": "bench-llama",
        "namespace": "bench",
        "image": "ghcr.io/example/labkit:0.1.0",
        "url": "http://vllm.serving.svc:8000",
        "server_labels": {"app.kubernetes.io/name": "vllm"},
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "bench_args": ["--rate", "10", "--num-requests", "200"],
        "server_namespace": "serving",
        "api_key_secret": ("vllm-key", "token"),
    }
    args.update(kw)
    return job.job_manifest(**args)


def test_job_manifest_is_valid_kubernetes() -> None:
    obj = manifest()
    kubernetes_validate.validate(obj, "1.31", strict=True)
    kubernetes_validate.validate(manifest(server_namespace=None, api_key_secret=None), "1.31", strict=True)


def test_job_runs_in_the_servers_zone_off_its_node() -> None:
    spec = manifest()["spec"]["template"]["spec"]
    term = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["topologyKey"] == "topology.kubernetes.io/zone"
    assert term["labelSelector"] == {"matchLabels": {"app.kubernetes.io/name": "vllm"}}
    assert term["namespaces"] == ["serving"]
    anti = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    container = spec["containers"][0]
    assert container["resources"]["requests"] == container["resources"]["limits"]  # Guaranteed QoS
    assert container["args"][:3] == ["-m", "labkit.bench", "run"]
    assert "--emit-markers" in container["args"]
    assert spec["restartPolicy"] == "Never"


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"image": "labkit:latest"}, "not pinned"), ({"image": "labkit"}, "not pinned"),
     ({"server_labels": {}}, "labels"), ({"name": "Bench_1"}, "DNS label")],
)  # fmt: skip
def test_job_manifest_rejects_bad_input(kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        manifest(**kw)


def test_result_is_collected_from_the_pod_log() -> None:
    doc = fake_result(Rate(5.0)).to_dict()
    log = "starting\nsome table\n" + job.wrap_result(doc) + "\nbye\n"
    assert job.parse_log(log) == json.loads(json.dumps(doc))
    with pytest.raises(Invalid, match="holds no result"):
        job.parse_log("Traceback: boom\n")
    with pytest.raises(Invalid, match="not valid JSON"):
        job.parse_log(f"{job.BEGIN_MARKER}\n{{oops\n{job.END_MARKER}\n")
