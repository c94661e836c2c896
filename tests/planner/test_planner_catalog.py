"""Catalogs: names resolve, shapes add up to the published parameter counts, models can be added."""

from __future__ import annotations

import pytest

from labkit import planner
from labkit.errors import ConfigError
from labkit.planner import ModelSpec


@pytest.mark.parametrize("name", ["A10G", "a10g", "NVIDIA-A10G", "nvidia a10g"])
def test_gpu_names_are_forgiving(name: str) -> None:
    assert planner.get_gpu(name).name == "A10G"


def test_karpenter_gpu_label_a100_means_the_40gb_part() -> None:
    assert planner.get_gpu("a100").name == "A100-40GB"
    assert planner.get_gpu("A100-80GB").memory_gb == 80


def test_unknown_gpu_suggests_near_names() -> None:
    with pytest.raises(ConfigError) as info:
        planner.get_gpu("H10")
    assert "H100" in str(info.value)


def test_every_gpu_has_a_source_and_dense_numbers() -> None:
    for gpu in planner.gpus():
        assert gpu.source
        assert gpu.memory_gib < gpu.memory_gb  # CUDA's GiB total is below the marketed GB
        assert gpu.bandwidth_gbps > 0
        assert gpu.bf16_tflops > 0
        if gpu.fp8_tflops is not None:
            assert gpu.fp8_tflops == pytest.approx(2 * gpu.bf16_tflops, rel=0.02)


@pytest.mark.parametrize(
    ("instance_type", "gpu", "count"),
    [
        ("g5.xlarge", "A10G", 1),
        ("g5.12xlarge", "A10G", 4),
        ("g6.48xlarge", "L4", 8),
        ("g6e.xlarge", "L40S", 1),
        ("p4d.24xlarge", "A100-40GB", 8),
        ("p4de.24xlarge", "A100-80GB", 8),
        ("p5.48xlarge", "H100", 8),
        ("p5en.48xlarge", "H200", 8),
    ],
)
def test_gpu_for_instance_type(instance_type: str, gpu: str, count: int) -> None:
    assert planner.gpu_for_instance_type(instance_type) == (gpu, count)


def test_prices_come_with_their_table() -> None:
    meta = planner.price_table()
    assert meta["region"] == "us-east-1" and meta["currency"] == "USD" and meta["price_date"] and meta["source"]
    priced = [it for it in planner.instance_types() if it.price_per_hour is not None]
    assert planner.get_instance_type("g5.xlarge").price_per_hour == pytest.approx(1.006)
    # Listed cheapest first; within a family a larger size costs more.
    assert [it.price_per_hour for it in priced] == sorted(it.price_per_hour for it in priced)
    small, large = planner.get_instance_type("g6.xlarge"), planner.get_instance_type("g6.2xlarge")
    assert small.price_per_hour < large.price_per_hour


def test_unknown_instance_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown GPU instance type"):
        planner.get_instance_type("m5.large")


def test_cpu_only_types_share_the_price_table() -> None:
    system = planner.get_ec2_instance_type("m7i.large")
    assert isinstance(system, planner.CpuInstanceType)
    assert (system.vcpu, system.memory_gib, system.gpu_count, system.arch) == (2, 8, 0, "amd64")
    assert system.price_per_hour == pytest.approx(0.1008)
    assert planner.get_ec2_instance_type("c6i.large").price_per_hour == pytest.approx(0.085)
    assert planner.get_ec2_instance_type(" G6.XLARGE ") is planner.get_instance_type("g6.xlarge")
    names = [it.name for it in planner.ec2_instance_types()]
    assert len(names) == len(set(names)), "a type is either GPU or CPU-only, never both"
    assert set(names) == {it.name for it in planner.instance_types()} | {c.name for c in planner.cpu_instance_types()}
    priced = [it.price_per_hour for it in planner.ec2_instance_types() if it.price_per_hour is not None]
    assert priced == sorted(priced)
    with pytest.raises(ConfigError, match=r"(?s)unknown instance type 'm7i\.larg'.*did you mean m7i\.large"):
        planner.get_ec2_instance_type("m7i.larg")


def test_every_priced_family_has_a_typical_spot_discount_with_its_basis() -> None:
    assert "spot" in planner.price_table()["spot_ratio_basis"].lower()
    assert "us-east-1" in planner.price_table()["same_price_regions"]
    for it in planner.ec2_instance_types():
        if it.price_per_hour is not None:
            assert 0.1 <= planner.spot_ratio(it.name) < 1.0, it.name
    assert planner.spot_ratio("g6.xlarge") == planner.spot_ratio("g6") == planner.spot_ratios()["g6"] == 0.45
    assert planner.spot_ratio("g6e.xlarge") != planner.spot_ratio("g6.xlarge"), "g6e is not g6"
    with pytest.raises(ConfigError, match="no typical spot discount for instance family 'x9'"):
        planner.spot_ratio("x9.large")


@pytest.mark.parametrize(
    "name",
    ["llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Meta-Llama-3.1-8B-Instruct", "Llama-3.1-8B"],
)
def test_model_names_resolve_to_one_spec(name: str) -> None:
    assert planner.get_model(name).name == "llama-3.1-8b"


def test_quantized_checkpoint_names_carry_their_dtype() -> None:
    assert planner.get_model("neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8").dtype == "fp8"
    assert planner.get_model("Qwen/Qwen2.5-7B-Instruct-AWQ").dtype == "int4-awq"
    assert planner.get_model("Qwen/Qwen2.5-7B-Instruct").dtype == "bf16"


@pytest.mark.parametrize("model", [m.name for m in planner.models()])
def test_shapes_add_up_to_the_published_parameter_count(model: str) -> None:
    spec = planner.get_model(model)
    assert spec.parameters is not None
    assert spec.computed_parameters == pytest.approx(spec.parameters, rel=0.005)


@pytest.mark.parametrize(
    ("model", "parser"),
    [
        ("llama-3.1-8b", "llama3_json"),
        ("llama-3.3-70b", "llama3_json"),
        ("qwen2.5-32b", "hermes"),
        ("mistral-7b-v0.3", "mistral"),
    ],
)
def test_tool_call_parser_per_family(model: str, parser: str) -> None:
    assert planner.get_model(model).default_tool_call_parser == parser


QWEN_LIKE_CONFIG = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
}


def test_add_a_model_from_a_hugging_face_config() -> None:
    spec = ModelSpec.from_hf_config("Qwen/Qwen2.5-1.5B-Instruct", QWEN_LIKE_CONFIG)
    assert (spec.layers, spec.kv_heads, spec.head_dim) == (28, 2, 128)
    assert spec.dtype == "bf16" and spec.tool_call_parser == "hermes" and spec.attention_bias
    # Qwen2.5-1.5B has 1,543,714,304 parameters (its model card says 1.54B).
    assert spec.computed_parameters == 1_543_714_304
    planner.register_model(spec)
    try:
        assert planner.get_model("Qwen/Qwen2.5-1.5B-Instruct") is spec
        assert planner.get_model("qwen2.5-1.5b").name == spec.name
        perf = planner.ServingPerf.from_names("Qwen/Qwen2.5-1.5B-Instruct", "L4", max_model_len=8192)
        assert perf.kv_cache_tokens > 100_000
    finally:
        planner.unregister_model(spec.name)
    with pytest.raises(ConfigError):
        planner.get_model("Qwen/Qwen2.5-1.5B-Instruct")


def test_registering_a_different_model_under_a_taken_name_is_refused() -> None:
    spec = ModelSpec.from_hf_config("llama-3.1-8b", QWEN_LIKE_CONFIG)
    with pytest.raises(ConfigError, match="already registered"):
        planner.register_model(spec)


def test_awq_config_sets_the_dtype() -> None:
    cfg = {**QWEN_LIKE_CONFIG, "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}}
    assert ModelSpec.from_hf_config("x/awq", cfg).dtype == "int4-awq"


def test_mixture_of_experts_configs_are_refused_clearly() -> None:
    with pytest.raises(ConfigError, match="mixture-of-experts"):
        ModelSpec.from_hf_config("mistralai/Mixtral-8x7B", {**QWEN_LIKE_CONFIG, "num_local_experts": 8})


def test_config_without_shapes_says_which_fields_are_missing() -> None:
    with pytest.raises(ConfigError, match="num_hidden_layers"):
        ModelSpec.from_hf_config("x/y", {"hidden_size": 10})


def test_heads_must_group_evenly() -> None:
    with pytest.raises(ConfigError, match="not a multiple"):
        ModelSpec.from_hf_config("x/y", {**QWEN_LIKE_CONFIG, "num_key_value_heads": 5})
