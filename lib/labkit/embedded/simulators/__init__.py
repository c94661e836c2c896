"""Model-server simulators of the embedded twin.

Each simulator speaks a real server's wire protocol on 127.0.0.1 so the kit's
clients, benchmarks and notebooks cannot tell it from the real thing, while its
latencies come from the capacity planner's model and run on the embedded
:class:`~labkit.embedded.clock.Clock`.

- :mod:`labkit.embedded.simulators.vllm`: vLLM's OpenAI-compatible server, both as
  the container runtime behind ``vllm/vllm-openai`` pods and standalone
  (``python -m labkit.embedded.simulators.vllm``).
"""

from __future__ import annotations


def register_all() -> None:
    """Register every simulator's container runtime with the embedded kubelet.

    Call once when an embedded cluster starts; registering twice is harmless.
    """
    from labkit.embedded.simulators.vllm.runtime import register

    register()
