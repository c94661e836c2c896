"""Serving: vLLM and TGI model servers, autoscaling, and OpenAI-compatible clients."""
