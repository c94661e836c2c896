"""Simulators of the embedded twin: model servers, and the AWS CLI of the Pod Identity lab.

Each simulator speaks a real server's wire protocol on 127.0.0.1 so the kit's
clients, benchmarks and notebooks cannot tell it from the real thing, while its
latencies come from the capacity planner's model and run on the embedded
:class:`~labkit.embedded.clock.Clock`.

- :mod:`labkit.embedded.simulators.vllm`: vLLM's OpenAI-compatible server, both as
  the container runtime behind ``vllm/vllm-openai`` pods and standalone
  (``python -m labkit.embedded.simulators.vllm``).
- :mod:`labkit.embedded.simulators.awscli`: the AWS CLI behind ``aws-cli`` pods, with
  credentials from EKS Pod Identity on the embedded AWS (the platform binds it at start).
"""

from __future__ import annotations


def register_all() -> None:
    """Register every simulator's container runtime with the embedded kubelet.

    Call once when an embedded cluster starts; registering twice is harmless.
    """
    from labkit.embedded.simulators.awscli.runtime import register as register_awscli
    from labkit.embedded.simulators.vllm.runtime import register as register_vllm

    register_vllm()
    register_awscli()
