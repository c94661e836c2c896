"""Catalogs of GPUs, EC2 instance types and models, read once from the package's data files.

Every number in the data files carries its source. Look things up by name with
:func:`get_gpu`, :func:`get_instance_type` and :func:`get_model`; names are forgiving
(``"a10g"``, ``"NVIDIA-A10G"``, ``"meta-llama/Llama-3.1-8B-Instruct"`` all resolve).
Add a model with :func:`register_model`, for example from a Hugging Face ``config.json``::

    register_model(ModelSpec.from_hf_config("my-org/my-model", json.loads(text)))

The instance table is the kit's one source of EC2 prices: GPU types (:func:`instance_types`) and
CPU-only types (:func:`cpu_instance_types`), both with us-east-1 on-demand prices of one dated
table (:func:`price_table`), and a typical spot discount per family (:func:`spot_ratio`).
:func:`get_ec2_instance_type` finds either kind by name. The embedded AWS's Pricing API and spot
price history, the fallback of ``labkit.aws.prices`` and the embedded Karpenter all read it.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from labkit.errors import ConfigError

GIB = 1024**3

#: Tool-call parser vLLM uses per model family (``--tool-call-parser``).
TOOL_CALL_PARSERS: dict[str, str] = {"llama": "llama3_json", "qwen2": "hermes", "mistral": "mistral"}


# --------------------------------------------------------------------------- GPUs


@dataclass(frozen=True)
class GpuSpec:
    """One GPU model.

    Attributes:
        name: canonical name, e.g. ``"A10G"``, ``"A100-80GB"``.
        architecture: ``ampere``, ``ada`` or ``hopper``.
        memory_gb: marketed memory in GB (what people say: "24 GB").
        memory_gib: total memory CUDA reports (``torch.cuda.mem_get_info``), in GiB: what vLLM's
            ``gpu_memory_utilization`` multiplies (a little less than ``nvidia-smi`` shows).
        memory_mib: GPU memory as EC2 reports it (MiB), the value of Karpenter's
            ``karpenter.k8s.aws/instance-gpu-memory`` label.
        bandwidth_gbps: peak memory bandwidth in GB/s (10^9 bytes per second).
        bf16_tflops: peak dense BF16/FP16 tensor throughput (no sparsity), in TFLOPS.
        fp8_tflops: peak dense FP8 tensor throughput, or ``None`` where the GPU has no FP8 tensor cores
            (vLLM then runs FP8 checkpoints weight-only, computing in 16 bits).
        label: the value of Karpenter's ``karpenter.k8s.aws/instance-gpu-name`` label.
        aliases: other names that resolve to this GPU.
        source: where the numbers come from.
    """

    name: str
    architecture: str
    memory_gb: float
    memory_gib: float
    memory_mib: int
    bandwidth_gbps: float
    bf16_tflops: float
    fp8_tflops: float | None
    label: str
    aliases: tuple[str, ...] = ()
    source: str = ""

    @property
    def memory_bytes(self) -> int:
        """Total memory in bytes as CUDA reports it."""
        return int(self.memory_gib * GIB)

    def peak_flops(self, compute_dtype: str) -> float:
        """Peak dense tensor FLOP/s for matrix multiplies computed in ``compute_dtype``."""
        if compute_dtype == "fp8" and self.fp8_tflops:
            return self.fp8_tflops * 1e12
        return self.bf16_tflops * 1e12

    @property
    def bandwidth_bytes(self) -> float:
        """Peak memory bandwidth in bytes per second."""
        return self.bandwidth_gbps * 1e9


# --------------------------------------------------------------------------- instance types


@dataclass(frozen=True)
class InstanceType:
    """One EC2 instance type with GPUs.

    Attributes:
        name: e.g. ``"g6e.xlarge"``.
        gpu: canonical GPU name (see :class:`GpuSpec`).
        gpu_count: GPUs on the instance.
        vcpu: virtual CPUs.
        memory_gib: host memory in GiB.
        price_per_hour: on-demand Linux price in USD per hour in :data:`PRICE_REGION`, or ``None`` where
            the type has no on-demand price (p5e: Capacity Blocks only).
        interconnect: ``nvlink`` (NVLink/NVSwitch between GPUs) or ``pcie``.
        source: where the numbers come from.
    """

    name: str
    gpu: str
    gpu_count: int
    vcpu: int
    memory_gib: float
    price_per_hour: float | None
    interconnect: str
    source: str = ""

    @property
    def family(self) -> str:
        """The instance family, e.g. ``g6e``."""
        return self.name.split(".", 1)[0]

    @property
    def gpu_spec(self) -> GpuSpec:
        """The :class:`GpuSpec` of this instance's GPUs."""
        return get_gpu(self.gpu)


@dataclass(frozen=True)
class CpuInstanceType:
    """One EC2 instance type without GPUs (system and general-purpose nodes).

    Attributes:
        name: e.g. ``"m7i.large"``.
        vcpu: virtual CPUs.
        memory_gib: memory in GiB.
        price_per_hour: on-demand Linux price in USD per hour in :data:`PRICE_REGION`.
        max_pods: the VPC CNI's pod limit for the type.
        arch: ``amd64`` or ``arm64``.
        source: where the numbers come from.
    """

    name: str
    vcpu: int
    memory_gib: float
    price_per_hour: float | None
    max_pods: int
    arch: str = "amd64"
    source: str = ""

    @property
    def gpu_count(self) -> int:
        """No GPUs (so code can read ``gpu_count`` on any catalog type)."""
        return 0

    @property
    def family(self) -> str:
        """The instance family, e.g. ``m7i``."""
        return self.name.split(".", 1)[0]


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelSpec:
    """A dense decoder-only transformer, as far as serving cost is concerned.

    Attributes:
        name: canonical short name, e.g. ``"llama-3.1-8b"``.
        hf_id: the Hugging Face repository people serve, e.g. ``"meta-llama/Llama-3.1-8B-Instruct"``.
        family: ``llama``, ``qwen2``, ``mistral`` (the HF ``model_type``).
        layers: transformer blocks (``num_hidden_layers``).
        hidden_size: model width.
        attention_heads: query heads.
        kv_heads: key/value heads (grouped-query attention).
        head_dim: width of one head.
        intermediate_size: MLP width.
        vocab_size: vocabulary (rows of the embedding and the LM head).
        parameters: published parameter count (``None``: computed from the shapes).
        dtype: default serving dtype (``bf16``, ``fp16``, ``fp8``, ``int4-awq``).
        max_context: longest context the model supports (``max_position_embeddings``).
        tool_call_parser: vLLM ``--tool-call-parser`` for this family, or ``None``.
        tie_word_embeddings: whether the LM head shares the embedding matrix.
        attention_bias: whether the q/k/v projections carry biases (Qwen2 does).
        aliases: other names that resolve to this model.
        source: where the shapes come from.
    """

    name: str
    hf_id: str
    family: str
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    parameters: int | None = None
    dtype: str = "bf16"
    max_context: int = 8192
    tool_call_parser: str | None = None
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    aliases: tuple[str, ...] = field(default=())
    source: str = ""

    def __post_init__(self) -> None:
        for attr in ("layers", "hidden_size", "attention_heads", "kv_heads", "head_dim", "intermediate_size"):
            if getattr(self, attr) <= 0:
                raise ConfigError(f"model {self.name!r}: {attr} must be positive", "check the model's config.json")
        if self.attention_heads % self.kv_heads:
            raise ConfigError(
                f"model {self.name!r}: {self.attention_heads} attention heads are not a multiple of "
                f"{self.kv_heads} KV heads",
                "check num_attention_heads and num_key_value_heads in the model's config.json",
            )

    # ---- parameter counts from the shapes

    @property
    def layer_linear_parameters(self) -> int:
        """Weights of the matrix multiplies in all transformer blocks (attention and MLP)."""
        h, q, kv = self.hidden_size, self.attention_heads * self.head_dim, self.kv_heads * self.head_dim
        attention = h * q + 2 * h * kv + q * h
        mlp = 3 * h * self.intermediate_size  # gate, up, down (SwiGLU)
        return self.layers * (attention + mlp)

    @property
    def embedding_parameters(self) -> int:
        """Embedding matrix plus, when untied, the LM head."""
        single = self.vocab_size * self.hidden_size
        return single if self.tie_word_embeddings else 2 * single

    @property
    def small_parameters(self) -> int:
        """Norm weights and biases: kept in 16 bits by every quantization scheme."""
        norms = self.layers * 2 * self.hidden_size + self.hidden_size
        bias = self.layers * (self.attention_heads + 2 * self.kv_heads) * self.head_dim if self.attention_bias else 0
        return norms + bias

    @property
    def computed_parameters(self) -> int:
        """Parameter count from the shapes."""
        return self.layer_linear_parameters + self.embedding_parameters + self.small_parameters

    @property
    def total_parameters(self) -> int:
        """The published count when known, else the computed one."""
        return self.parameters or self.computed_parameters

    @property
    def matmul_parameters_per_token(self) -> int:
        """Weights every token multiplies through (blocks plus LM head); 2 FLOPs each."""
        return self.layer_linear_parameters + self.vocab_size * self.hidden_size

    @property
    def attention_width(self) -> int:
        """Query heads times head dim (the width attention FLOPs scale with)."""
        return self.attention_heads * self.head_dim

    @property
    def default_tool_call_parser(self) -> str | None:
        """The parser for this model: its own, else the family's."""
        return self.tool_call_parser or TOOL_CALL_PARSERS.get(self.family)

    @classmethod
    def from_hf_config(cls, name: str, config: Mapping[str, Any], **overrides: Any) -> ModelSpec:
        """Build a spec from a Hugging Face ``config.json`` (already parsed into a dict).

        Args:
            name: the name to register it under (a HF id such as ``"org/model"`` works).
            config: the parsed ``config.json``.
            **overrides: fields to set explicitly (``parameters``, ``dtype``, ``tool_call_parser``...).

        Raises:
            ConfigError: the config lacks a field the planner needs, or describes a mixture of experts.
        """
        cfg = dict(config.get("text_config") or config)
        if any(k in cfg for k in ("num_experts", "num_local_experts", "n_routed_experts")):
            raise ConfigError(
                f"{name}: mixture-of-experts models are not modelled by the planner",
                "plan a dense model, or add the expert counts to labkit.planner before planning this one",
            )
        missing = [
            k
            for k in ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size")
            if k not in cfg
        ]
        if missing:
            raise ConfigError(
                f"{name}: config.json lacks {', '.join(missing)}",
                "pass the model's own config.json (from the Hugging Face repository), not a generation config",
            )
        heads = int(cfg["num_attention_heads"])
        hidden = int(cfg["hidden_size"])
        family = str(cfg.get("model_type", "")).lower()
        quant = cfg.get("quantization_config") or {}
        method = str(quant.get("quant_method", "")).lower()
        if method == "awq":
            dtype = "int4-awq"
        elif method in ("fp8", "compressed-tensors") and "fp8" in str(quant).lower():
            dtype = "fp8"
        else:
            dtype = normalize_dtype(str(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16"))
        fields: dict[str, Any] = {
            "name": name,
            "hf_id": name if "/" in name else "",
            "family": family,
            "layers": int(cfg["num_hidden_layers"]),
            "hidden_size": hidden,
            "attention_heads": heads,
            "kv_heads": int(cfg.get("num_key_value_heads") or heads),
            "head_dim": int(cfg.get("head_dim") or hidden // heads),
            "intermediate_size": int(cfg["intermediate_size"]),
            "vocab_size": int(cfg["vocab_size"]),
            "dtype": dtype,
            "max_context": int(cfg.get("max_position_embeddings") or 2048),
            "tool_call_parser": TOOL_CALL_PARSERS.get(family),
            "tie_word_embeddings": bool(cfg.get("tie_word_embeddings", False)),
            "attention_bias": bool(cfg.get("attention_bias", family == "qwen2")),
            "source": "Hugging Face config.json",
        }
        fields.update(overrides)
        return cls(**fields)


# --------------------------------------------------------------------------- dtypes

#: Accepted spellings of each serving dtype.
_DTYPE_SPELLINGS: dict[str, str] = {
    "bf16": "bf16",
    "bfloat16": "bf16",
    "torch.bfloat16": "bf16",
    "fp16": "fp16",
    "float16": "fp16",
    "half": "fp16",
    "torch.float16": "fp16",
    "fp8": "fp8",
    "float8": "fp8",
    "fp8_e4m3": "fp8",
    "int8": "int8",
    "w8a8": "int8",
    "awq": "int4-awq",
    "int4": "int4-awq",
    "int4-awq": "int4-awq",
    "w4a16": "int4-awq",
    "gptq": "int4-awq",
}
DTYPES: tuple[str, ...] = ("bf16", "fp16", "fp8", "int8", "int4-awq")


def normalize_dtype(dtype: str) -> str:
    """Canonical dtype name (``bf16``, ``fp16``, ``fp8``, ``int8``, ``int4-awq``).

    Raises:
        ConfigError: the dtype is not one the planner models.
    """
    key = dtype.strip().lower()
    if key in ("auto", "float32", "fp32"):
        # vLLM serves float32 checkpoints in 16 bits on GPUs; "auto" means the model's default.
        return "bf16"
    try:
        return _DTYPE_SPELLINGS[key]
    except KeyError:
        raise ConfigError(
            f"unknown dtype {dtype!r}", f"use one of {', '.join(DTYPES)} (or bfloat16, float16, awq)"
        ) from None


# --------------------------------------------------------------------------- loading


def _data(name: str) -> dict[str, Any]:
    text = resources.files("labkit.planner").joinpath("data", name).read_text(encoding="utf-8")
    return yaml.safe_load(text)


@functools.cache
def _gpus() -> dict[str, GpuSpec]:
    out: dict[str, GpuSpec] = {}
    for row in _data("gpus.yaml")["gpus"]:
        spec = GpuSpec(**{**row, "aliases": tuple(row.get("aliases", ()))})
        out[spec.name] = spec
    return out


#: Keys of ``instance_types.yaml`` that are tables, not metadata of the price table.
_TABLE_KEYS = ("instance_types", "general_purpose", "spot_ratios")


@functools.cache
def _instance_doc() -> dict[str, Any]:
    return _data("instance_types.yaml")


@functools.cache
def _instances() -> tuple[dict[str, InstanceType], dict[str, Any]]:
    doc = _instance_doc()
    meta = {k: v for k, v in doc.items() if k not in _TABLE_KEYS}
    out = {row["name"]: InstanceType(**row) for row in doc["instance_types"]}
    return out, meta


@functools.cache
def _cpu_instances() -> dict[str, CpuInstanceType]:
    return {row["name"]: CpuInstanceType(**row) for row in _instance_doc().get("general_purpose") or ()}


@functools.cache
def _spot_ratios() -> dict[str, float]:
    return {str(family): float(ratio) for family, ratio in (_instance_doc().get("spot_ratios") or {}).items()}


_REGISTERED: dict[str, ModelSpec] = {}


@functools.cache
def _builtin_models() -> dict[str, ModelSpec]:
    out: dict[str, ModelSpec] = {}
    for row in _data("models.yaml")["models"]:
        spec = ModelSpec(**{**row, "aliases": tuple(row.get("aliases", ()))})
        out[spec.name] = spec
    return out


def price_table() -> dict[str, Any]:
    """Metadata of the instance price table.

    Keys: ``region``, ``currency``, ``price_date``, ``source`` (of the on-demand prices),
    ``same_price_regions`` (regions that usually share ``region``'s prices) and
    ``spot_ratio_basis`` (what the typical spot discounts of :func:`spot_ratio` rest on).
    """
    return dict(_instances()[1])


#: Region of the on-demand prices in the instance catalog.
PRICE_REGION = "us-east-1"


# --------------------------------------------------------------------------- look-ups


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", name.strip().lower()).strip("-")


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    shown = close or known
    return ("did you mean " if close else "known: ") + ", ".join(shown)


def gpus() -> list[GpuSpec]:
    """Every GPU in the catalog."""
    return list(_gpus().values())


def get_gpu(name: str) -> GpuSpec:
    """The GPU called ``name`` (case and punctuation do not matter; aliases work).

    Raises:
        ConfigError: no such GPU; the message lists near matches.
    """
    key = _key(name).removeprefix("nvidia-")
    for spec in _gpus().values():
        if key == _key(spec.name) or key in {_key(a) for a in spec.aliases}:
            return spec
    raise ConfigError(f"unknown GPU {name!r}", _suggest(name, [g.name for g in _gpus().values()]))


def instance_types() -> list[InstanceType]:
    """Every instance type in the catalog, cheapest first."""
    return sorted(_instances()[0].values(), key=lambda i: (i.price_per_hour or float("inf"), i.name))


def get_instance_type(name: str) -> InstanceType:
    """The instance type called ``name`` (e.g. ``"g6e.xlarge"``).

    Raises:
        ConfigError: not a GPU instance type the catalog knows.
    """
    found = _instances()[0].get(name.strip().lower())
    if found is None:
        raise ConfigError(f"unknown GPU instance type {name!r}", _suggest(name.strip().lower(), list(_instances()[0])))
    return found


def cpu_instance_types() -> list[CpuInstanceType]:
    """Every CPU-only instance type in the catalog (system and general-purpose nodes), cheapest first."""
    return sorted(_cpu_instances().values(), key=lambda i: (i.price_per_hour or float("inf"), i.name))


def ec2_instance_types() -> list[InstanceType | CpuInstanceType]:
    """Every instance type the catalog knows, GPU and CPU-only, cheapest first."""
    both: list[InstanceType | CpuInstanceType] = [*_instances()[0].values(), *_cpu_instances().values()]
    return sorted(both, key=lambda i: (i.price_per_hour or float("inf"), i.name))


def get_ec2_instance_type(name: str) -> InstanceType | CpuInstanceType:
    """The GPU or CPU-only instance type called ``name`` (e.g. ``"g6.xlarge"``, ``"m7i.large"``).

    Raises:
        ConfigError: the catalog does not know the type.
    """
    key = name.strip().lower()
    found = _instances()[0].get(key) or _cpu_instances().get(key)
    if found is None:
        known = [*_instances()[0], *_cpu_instances()]
        raise ConfigError(f"unknown instance type {name!r}", _suggest(key, known))
    return found


def spot_ratios() -> dict[str, float]:
    """Typical spot price as a share of on-demand, per family (its basis: ``price_table()["spot_ratio_basis"]``)."""
    return dict(_spot_ratios())


def spot_ratio(instance_type: str) -> float:
    """Typical spot price of ``instance_type`` (or of a family, ``"g6"``) as a share of its on-demand price.

    A rounded, typical discount per family, not a market price: see ``price_table()["spot_ratio_basis"]``.

    Raises:
        ConfigError: the catalog has no typical spot discount for the type's family.
    """
    family = instance_type.strip().lower().split(".", 1)[0]
    ratio = _spot_ratios().get(family)
    if ratio is None:
        raise ConfigError(
            f"no typical spot discount for instance family {family!r}",
            "use a family the kit lists ("
            + ", ".join(sorted(_spot_ratios()))
            + "), or add it to spot_ratios in labkit/planner/data/instance_types.yaml",
        )
    return ratio


def gpu_for_instance_type(instance_type: str) -> tuple[str, int]:
    """The GPU name and count of an instance type, e.g. ``("A10G", 4)`` for ``g5.12xlarge``."""
    it = get_instance_type(instance_type)
    return it.gpu, it.gpu_count


def models() -> list[ModelSpec]:
    """Every model: the built-in catalog plus those added with :func:`register_model`."""
    return list({**_builtin_models(), **_REGISTERED}.values())


def register_model(spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
    """Add a model to the catalog for this process.

    Raises:
        ConfigError: a different model is already registered under that name (pass ``replace=True``).
    """
    existing = {**_builtin_models(), **_REGISTERED}.get(spec.name)
    if existing is not None and existing != spec and not replace:
        raise ConfigError(
            f"a different model is already registered as {spec.name!r}",
            "register it under another name, or pass replace=True",
        )
    _REGISTERED[spec.name] = spec
    return spec


def unregister_model(name: str) -> None:
    """Remove a model added with :func:`register_model` (built-in models stay)."""
    _REGISTERED.pop(name, None)


#: Name suffixes of quantized checkpoints and the dtype they imply.
_QUANT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("-fp8-dynamic", "fp8"),
    ("-fp8", "fp8"),
    ("-awq-int4", "int4-awq"),
    ("-awq", "int4-awq"),
    ("-gptq-int4", "int4-awq"),
    ("-w4a16", "int4-awq"),
    ("-w8a8", "int8"),
)


def _model_key(name: str) -> str:
    key = _key(name.rsplit("/", 1)[-1])
    key = key.removeprefix("meta-")
    key = re.sub(r"-(instruct|chat|it)(?=-|$)", "", key)
    return key


def get_model(name: str) -> ModelSpec:
    """The model called ``name``: a short name, a Hugging Face id or an alias.

    Instruct/chat variants resolve to their base shapes. A quantized checkpoint's name
    (``...-FP8``, ``...-AWQ``) resolves to the base model with that dtype as its default.

    Raises:
        ConfigError: no such model; the message says how to add one.
    """
    everything = {**_builtin_models(), **_REGISTERED}
    if name in everything:
        return everything[name]
    key = _model_key(name)
    dtype = None
    for suffix, implied in _QUANT_SUFFIXES:
        if key.endswith(suffix):
            key, dtype = key.removesuffix(suffix), implied
            break
    for spec in everything.values():
        names = {spec.name, spec.hf_id, *spec.aliases} - {""}
        if key in {_model_key(n) for n in names}:
            return spec if dtype is None else dataclasses.replace(spec, dtype=dtype)
    raise ConfigError(
        f"unknown model {name!r}",
        _suggest(name, sorted(everything)) + "; or add it with "
        "labkit.planner.register_model(ModelSpec.from_hf_config(name, config_json_dict))",
    )
