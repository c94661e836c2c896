"""Fixtures for the vLLM simulator tests: a hand-written performance model and a server factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from labkit.embedded.simulators.vllm import serve

MODEL = "sim-model"


@dataclass
class FakePerf:
    """A small, predictable performance model (seconds are simulated)."""

    kv_cache_tokens: int = 16384
    block_size: int = 16
    max_num_seqs: int = 64
    prefill_base: float = 0.001
    prefill_per_token: float = 1e-5
    decode_base: float = 0.002
    decode_per_seq: float = 1e-5

    def prefill_seconds(self, prompt_tokens: int) -> float:
        return self.prefill_base + prompt_tokens * self.prefill_per_token

    def decode_step_seconds(self, batch_size: int, context_tokens: int) -> float:
        return self.decode_base + batch_size * self.decode_per_seq + context_tokens * 1e-9


@pytest.fixture
def fake_perf() -> type[FakePerf]:
    """The hand-written performance model class, for tests that build engines or servers themselves."""
    return FakePerf


@pytest.fixture
def start_sim() -> Iterator[Callable[..., str]]:
    """Start simulators (model mode with :class:`FakePerf` unless ``fast=True``); returns the base URL."""
    stops: list[Callable[[], None]] = []

    def start(**kwargs: Any) -> str:
        model = kwargs.pop("model", MODEL)
        gpu = kwargs.pop("gpu", "L4")
        if not kwargs.get("fast"):
            kwargs.setdefault("perf", FakePerf())
            kwargs.setdefault("max_model_len", 4096)
        port, stop = serve(model, gpu, **kwargs)
        stops.append(stop)
        return f"http://127.0.0.1:{port}"

    yield start
    for stop in stops:
        stop()
