"""Serving lab steps: a vLLM server on the embedded platform, timed, measured, scaled to zero; capacity plans."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import labkit
from labkit import cluster, compute, kube, serving
from labkit.compute.nodepools import GpuPool
from labkit.errors import Invalid, WaitTimeout
from labkit.planner import SLO
from labkit.serving.manifests import ModelServer
from labkit.serving.steps import ServerMetrics, parse_metrics, rejection_summary
from labkit.targets.embedded import STATE_ENV, start_in_process

pytestmark = pytest.mark.timeout(180)

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
SERVER = ModelServer(name="llama-8b", model=MODEL, cpu="3", memory="12Gi", hf_token_secret=None)

EXPOSITION = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m",engine="0"} 3.0
vllm:num_requests_waiting{model_name="m",engine="0"} 2.0
vllm:kv_cache_usage_perc{model_name="m",engine="0"} 0.5
vllm:generation_tokens_total{model_name="m",engine="0"} 100.0
vllm:request_success_total{model_name="m",engine="0",finished_reason="stop"} 3.0
vllm:request_success_total{model_name="m",engine="0",finished_reason="length"} 2.0
vllm:time_to_first_token_seconds_sum{model_name="m",engine="0"} 0.5
vllm:time_to_first_token_seconds_count{model_name="m",engine="0"} 5.0
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m",engine="0"} 5.0
vllm:cache_config_info{block_size="16",num_gpu_blocks="1534",engine="0"} 1.0
weird_metric{path="a \\"quoted\\" \\\\ value",x="1"} 7 1700000000000
not a sample line
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[labkit.LabContext]:
    tmp = tmp_path_factory.mktemp("serving")
    saved = dict(os.environ)
    os.environ["LABKIT_HOME"] = str(tmp)
    os.environ["LABKIT_TIME_SCALE"] = "600"
    ctx = labkit.setup(target="embedded", headless=True, lab="serving-steps", cluster_name="serving-steps")
    services, _ = start_in_process(ctx.settings, tmp / "state.json")
    os.environ[STATE_ENV] = str(tmp / "state.json")
    try:
        cluster.ensure(ctx)
        compute.create_gpu_pool(GpuPool(families=("g6",), gpu_limit=2, consolidate_after="1m"), lab=ctx)
        yield ctx
    finally:
        services.stop()
        os.environ.clear()
        os.environ.update(saved)


# ---------------------------------------------------------------------------------------------- pure parts


def test_parse_metrics_reads_labels_values_and_escapes() -> None:
    samples = parse_metrics(EXPOSITION)
    weird = next(s for s in samples if s.name == "weird_metric")
    assert weird.labels == {"path": 'a "quoted" \\ value', "x": "1"} and weird.value == 7.0
    assert not any(s.name == "not" for s in samples)
    m = ServerMetrics.from_text(EXPOSITION)
    assert (m.running, m.waiting, m.kv_cache_usage, m.requests) == (3, 2, 0.5, 5)
    assert m.mean_ttft_s == pytest.approx(0.1)
    assert m.kv_cache_tokens == 1534 * 16
    assert m.model == "m"
    assert m.mean_itl_s is None  # no inter-token samples yet


def test_since_subtracts_counters_and_keeps_gauges() -> None:
    before = ServerMetrics(running=9, generation_tokens=40, ttft_count=1, ttft_sum=0.2)
    now = ServerMetrics(running=1, generation_tokens=100, ttft_count=2, ttft_sum=0.5)
    delta = now.since(before)
    assert (delta.running, delta.generation_tokens) == (1, 60)
    assert delta.mean_ttft_s == pytest.approx(0.3)


def test_plan_capacity_ranks_and_explains() -> None:
    interactive = serving.Sla("interactive", SLO(ttft_ms=500, tpot_ms=50), concurrency=16)
    batch = serving.Sla(
        "batch", SLO(ttft_ms=10_000, tpot_ms=200), concurrency=128, prompt_tokens=2048, output_tokens=512
    )
    matrix = serving.plan_capacity([MODEL, "Qwen/Qwen2.5-32B-Instruct"], [interactive, batch])
    rows = {(r["model"], r["sla"]): r for r in matrix.rows()}
    llama = rows[(MODEL, "interactive")]
    # An L4's decode step alone is ~60 ms for an 8B model: the interactive TPOT needs an L40S.
    assert llama["instance"] == "g6e.xlarge"
    assert llama["tpot_ms"] <= 50 and llama["usd_per_1m_output_tokens"] > 0
    plan = matrix.plan(MODEL, "interactive")
    assert any("too slow even with one request" in line and "g6.xlarge" in line for line in rejection_summary(plan))
    qwen = matrix.plan("Qwen/Qwen2.5-32B-Instruct", "batch")
    assert any(
        line.startswith(f"{sum('does not fit' in r.reason for r in qwen.rejected)} the weights")
        for line in rejection_summary(qwen)
    )
    assert rows[(MODEL, "batch")]["usd_per_1m_output_tokens"] < llama["usd_per_1m_output_tokens"]
    assert "SLAs: interactive: TTFT <= 500 ms, TPOT <= 50 ms; 16 in flight" in str(matrix)
    assert "<table>" in matrix._repr_html_()


# ---------------------------------------------------------------------------------------------- on the platform


def test_deploy_times_the_start_and_serves(lab: labkit.LabContext) -> None:
    deployed = serving.deploy(SERVER, lab=lab)
    ready = deployed.readiness
    assert ready is not None and ready.ready
    spent = ready.phases()
    assert set(spent) == {"waiting for a node", "pulling the image", "loading the model"}
    assert 60 <= spent["waiting for a node"] <= 240  # Karpenter batches, the GPU instance boots
    assert spent["loading the model"] >= 30  # 16 GB of weights plus engine start-up
    assert "g6.xlarge" in ready.node  # 3 CPUs and 12Gi fit the smallest L4 instance
    assert any(what.startswith("Karpenter: Pod should schedule on: nodeclaim/gpu-") for _, what in ready.events)
    assert ready.kubectl == "kubectl rollout status deployment/llama-8b -n serving --timeout=1800s"

    streamed = serving.stream(SERVER, "What is a KV cache?", max_tokens=16, lab=lab)
    assert streamed.result.completion_tokens == 16
    assert streamed.server.ttft_count == 1 and streamed.server.generation_tokens == 16
    assert streamed.tpot_s is not None and 0.02 < streamed.tpot_s < 0.2  # an L4 decodes an 8B model in ~60 ms
    assert "server: TTFT" in str(streamed)

    m = serving.metrics(SERVER, lab=lab)
    assert m.model == MODEL and m.requests >= 1 and m.kv_cache_tokens > 8192
    assert m.running == 0 and m.waiting == 0

    burst = serving.metrics_under_load(SERVER, concurrency=24, prompt_tokens=1000, max_tokens=256, lab=lab)
    assert burst.failures == ()
    assert burst.after.requests == 24 and burst.after.generation_tokens == 24 * 256
    # 24 x ~1256 tokens do not fit an L4's ~24.5k-token KV cache: sequences are preempted.
    assert burst.after.preemptions > 0
    assert burst.peak.running > 0


def test_a_crashing_server_fails_fast_with_its_log(lab: labkit.LabContext) -> None:
    # 70B weights cannot fit one L4: vLLM exits during start-up, and the wait says so instead of timing out.
    broken = ModelServer(
        name="too-big", model="meta-llama/Llama-3.1-70B-Instruct", cpu="3", memory="12Gi", hf_token_secret=None
    )
    with pytest.raises(WaitTimeout) as err:
        serving.deploy(broken, lab=lab, timeout=1800)
    assert "is failing" in err.value.what
    serving.delete(broken, lab=lab)


def test_scale_to_zero_frees_the_gpu(lab: labkit.LabContext) -> None:
    serving.deploy(SERVER, lab=lab)
    zero = serving.scale_to_zero(SERVER, lab=lab)
    assert zero.before == 1 and zero.nodes
    assert zero.kubectl == "kubectl scale deployment.apps/llama-8b --replicas=0 -n serving"
    with pytest.raises(Invalid, match="0 replicas"):
        serving.wait_ready(SERVER, lab=lab)
    gone = compute.watch_nodes(pool="gpu", until="gone", lab=lab)
    assert gone.done
    # Deploying again takes the replica count back from the scale (and Karpenter brings a node back).
    again = serving.deploy(SERVER, lab=lab)
    assert again.readiness is not None and again.readiness.ready
    assert [i.action for i in again.applied.items if i.ref.startswith("deployment")] == ["configured"]


def test_token_secret_is_stored_and_never_shown(lab: labkit.LabContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    skipped = serving.hf_token_secret("tokens", lab=lab)
    assert skipped.action == "skipped" and "HF_TOKEN is not set" in str(skipped)
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    made = serving.hf_token_secret("tokens", lab=lab)
    assert made.action == "created" and "hf_not_a_real_token" not in str(made)
    secret = kube.Kube.of(lab.platform()).get("v1", "Secret", "hf-token", "tokens")
    assert set(secret["data"]) == {"token"}
