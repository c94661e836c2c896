"""A simulated vLLM OpenAI-compatible server.

Split like the rest of the embedded twin: :mod:`.engine` (state: the
continuous-batching scheduler on simulated time), :mod:`.protocol` and
:mod:`.responses` (wire format: requests in, JSON and server-sent events out),
:mod:`.server` (routes), :mod:`.metrics` (Prometheus exposition with vLLM's
names), :mod:`.tokens` (the deterministic token model), :mod:`.runtime` (the
container runtime behind ``vllm/vllm-openai`` pods).

Standalone::

    from labkit.embedded.simulators.vllm import serve
    port, stop = serve("meta-llama/Llama-3.1-8B-Instruct", "L4")

or ``python -m labkit.embedded.simulators.vllm --model M --gpu G [--fast]``.
"""

from __future__ import annotations

from labkit.embedded.simulators.vllm.config import VLLM_VERSION, SimulatorConfig
from labkit.embedded.simulators.vllm.perf import PerfModel
from labkit.embedded.simulators.vllm.server import VllmSimulator, serve

__all__ = ["VLLM_VERSION", "PerfModel", "SimulatorConfig", "VllmSimulator", "serve"]
