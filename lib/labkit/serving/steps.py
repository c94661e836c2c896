"""Lab steps for model serving: deploy, wait for readiness, call, read ``/metrics``, scale to zero, plan.

Each step composes the pure builders (:mod:`.manifests`), the kube client and the OpenAI-compatible
client (:mod:`.client`), and returns a result that prints readably, renders in a notebook and carries
the equivalent ``kubectl`` command::

    from labkit import serving
    from labkit.serving.manifests import ModelServer

    server = ModelServer(name="llama-8b", model="meta-llama/Llama-3.1-8B-Instruct")
    serving.deploy(server)                 # apply, then a timeline: node, image pull, model load, Ready
    serving.stream(server, "Hello!")       # one streamed request: TTFT and TPOT
    serving.metrics(server)                # vLLM's gauges and counters, explained
    serving.scale_to_zero(server)          # the GPU node becomes empty; consolidation removes it

Times are cluster times: on the embedded target the cluster's clock runs ``time_scale`` times faster
than the wall clock, so client-side timings are converted (wall seconds x time scale) and the
server-side ones come from vLLM's own histograms.
"""

from __future__ import annotations

import html
import http.client
import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from labkit import kube as kube_mod
from labkit.compute.steps import PendingExplanation, clock_text, kube_for, poll_seconds, scale
from labkit.compute.steps import why_pending as _why_pending
from labkit.context import LabContext
from labkit.errors import Invalid, LabkitError, Unreachable, WaitTimeout
from labkit.kube import Kube, status
from labkit.kube.apply import ApplyResult
from labkit.kube.diagnose import explain_object
from labkit.planner import SLO, CapacityPlan, cheapest_instance
from labkit.progress import LiveView, Shown
from labkit.serving import client
from labkit.serving.manifests import ModelServer, manifests

READY_TIMEOUT_S = 1800.0  # node launch + a 10 GB image + loading weights: many minutes on a real cluster
SCALE_DOWN_TIMEOUT_S = 300.0
FAILING_REASONS = (
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
    "CreateContainerError",
)


def _namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _pre(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


# ---------------------------------------------------------------------------------------------- token


@dataclass(frozen=True)
class TokenSecret(Shown):
    """The Hugging Face token Secret a model server reads (the value is never shown)."""

    namespace: str
    name: str
    action: str
    kubectl: str

    def __str__(self) -> str:
        if self.action == "skipped":
            return (
                f"HF_TOKEN is not set: no Secret {self.namespace}/{self.name} created. Gated models (Llama) "
                "cannot download on a real cluster without it (export HF_TOKEN=hf_... after accepting the "
                "licence on huggingface.co); the embedded simulator downloads nothing."
            )
        return f"secret/{self.name} -n {self.namespace} {self.action} (the token is not shown)"


def hf_token_secret(
    namespace: str = "serving",
    *,
    name: str = "hf-token",
    token: str | None = None,
    lab: LabContext | None = None,
    kube: Any = None,
) -> TokenSecret:
    """Store the Hugging Face token (``token`` or ``$HF_TOKEN``) as Secret ``name`` under key ``token``.

    Without a token nothing is created and the result says what that means.
    """
    k = kube_for(lab, kube)
    value = token or os.environ.get("HF_TOKEN")
    cmd = f"kubectl create secret generic {name} -n {namespace} --from-literal=token=$HF_TOKEN"
    if not value:
        return TokenSecret(namespace, name, "skipped", cmd)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "stringData": {"token": value},
    }
    applied = kube_mod.apply([_namespace(namespace), secret], kube=k)
    return TokenSecret(namespace, name, applied.items[-1].action, cmd)


# ---------------------------------------------------------------------------------------------- readiness


@dataclass
class Readiness(Shown):
    """How a model server became Ready: a timeline of cluster times and where the time went.

    Attributes:
        server: the Deployment's name.
        namespace: its namespace.
        started: cluster time (epoch seconds) of the first pod's creation.
        events: ``(cluster time, what)`` pairs, oldest first.
        ready: whether the rollout finished.
        node: ``name (instance type, capacity type, zone)`` of the node serving it.
        elapsed_wall_s: wall seconds the wait took.
        time_scale: the cluster clock's speed-up.
        kubectl: the equivalent ``kubectl rollout status``.
    """

    server: str
    namespace: str
    started: float
    events: list[tuple[float, str]] = field(default_factory=list)
    ready: bool = False
    node: str = ""
    elapsed_wall_s: float = 0.0
    time_scale: float = 1.0
    kubectl: str = ""

    def add(self, at: float | None, what: str) -> None:
        """Record an event once."""
        if at is not None and all(w != what for _, w in self.events):
            self.events.append((at, what))
            self.events.sort(key=lambda e: e[0])

    def _at(self, prefix: str) -> float | None:
        return next((at for at, what in self.events if what.startswith(prefix)), None)

    def phases(self) -> dict[str, float]:
        """Cluster seconds spent waiting for a node, pulling the image and loading the model (where known)."""
        marks = [
            ("waiting for a node", self.started, self._at("scheduled on")),
            ("pulling the image", self._at("pulling image"), self._at("image pulled")),
            ("loading the model", self._at("container started"), self._at("Ready")),
        ]
        return {name: end - start for name, start, end in marks if start is not None and end is not None}

    def lines(self) -> list[str]:
        """The timeline as text lines."""
        total = (self._at("Ready") or self.started) - self.started
        state = f"is Ready after {clock_text(total)} of cluster time" if self.ready else "is starting"
        out = [f"deployment/{self.server} in {self.namespace} {state}"]
        if self.node:
            out.append(f"  on node {self.node}")
        for at, what in self.events:
            out.append(f"  {'+' + clock_text(at - self.started):>8}  {what}")
        spent = self.phases()
        if self.ready and spent:
            out.append("  where the time went: " + ", ".join(f"{k} {clock_text(v)}" for k, v in spent.items()))
        return out

    def __str__(self) -> str:
        text = "\n".join(self.lines())
        if self.ready and self.time_scale != 1.0:
            text += f"\n  ({self.elapsed_wall_s:.1f} s wall at time scale {self.time_scale:g})"
        return text


def _pods(k: Kube, server: ModelServer) -> list[dict[str, Any]]:
    pods = k.list("v1", "Pod", server.namespace, label_selector=f"app.kubernetes.io/name={server.name}").items
    return [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]


def _node_summary(k: Kube, name: str) -> str:
    node = k.try_get("v1", "Node", name)
    if node is None:
        return name
    labels = (node.get("metadata") or {}).get("labels") or {}
    capacity = labels.get("karpenter.sh/capacity-type") or labels.get("eks.amazonaws.com/capacityType") or "?"
    return (
        f"{name} ({labels.get('node.kubernetes.io/instance-type', '?')}, {capacity.lower()}, "
        f"{labels.get('topology.kubernetes.io/zone', '?')})"
    )


def _pod_timeline(k: Kube, readiness: Readiness, pod: dict[str, Any], events: list[dict[str, Any]]) -> None:
    meta = pod["metadata"]
    created = status.parse_time(meta.get("creationTimestamp"))
    readiness.add(created, f"pod/{meta['name']} created")
    for e in events:
        inv = e.get("involvedObject") or {}
        if inv.get("kind") != "Pod" or inv.get("name") != meta["name"]:
            continue
        at = status.parse_time(e.get("firstTimestamp") or e.get("eventTime") or e.get("lastTimestamp"))
        reason, message = e.get("reason"), str(e.get("message") or "")
        source = str((e.get("source") or {}).get("component") or e.get("reportingComponent") or "")
        if reason == "Nominated":
            readiness.add(at, f"Karpenter: {message}")
        elif reason == "FailedScheduling" and "karpenter" in source:
            readiness.add(at, f"Karpenter cannot place it yet: {message}")
        elif reason == "FailedScheduling":
            readiness.add(at, "no node fits yet (the scheduler leaves it Pending for Karpenter)")
        elif reason == "Pulling":
            readiness.add(at, f"pulling image {message.removeprefix('Pulling image ').strip(chr(34))}")
        elif reason == "Pulled":
            readiness.add(at, f"image pulled: {message}")
        elif reason == "Started":
            readiness.add(at, "container started: vLLM loads the weights; the startup probe waits for /health")
    scheduled = status.condition(pod, "PodScheduled")
    node = (pod.get("spec") or {}).get("nodeName")
    if node and scheduled and str(scheduled.get("status")) == "True":
        readiness.add(status.parse_time(scheduled.get("lastTransitionTime")), f"scheduled on {node}")
    ready = status.condition(pod, "Ready")
    if ready and str(ready.get("status")) == "True":
        readiness.add(status.parse_time(ready.get("lastTransitionTime")), "Ready: /health answers 200")


def _failing(pod: dict[str, Any]) -> str:
    for c in status.container_statuses(pod):
        waiting = (c.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FAILING_REASONS:
            return str(waiting["reason"])
        last = (c.get("lastState") or {}).get("terminated") or {}
        if int(c.get("restartCount") or 0) >= 1 and int(last.get("exitCode") or 0) != 0:
            return f"the container exited with code {last.get('exitCode')} and restarted"
    return ""


def wait_ready(
    server: ModelServer,
    *,
    lab: LabContext | None = None,
    kube: Any = None,
    timeout: float = READY_TIMEOUT_S,
) -> Readiness:
    """Wait until a model server's rollout is done, showing a timeline while it happens.

    The timeline follows the server's pod: Karpenter's nomination of a NodeClaim, scheduling on the new
    node, the image pull, the container start (vLLM loading the weights while the startup probe waits)
    and Ready. A pod that crash-loops or cannot pull its image stops the wait at once.

    Raises:
        Invalid: the Deployment is scaled to zero.
        WaitTimeout: not Ready within ``timeout`` cluster seconds, or failing; the message explains why
            (Karpenter's reason for a Pending pod, probe failures, the log tail of a crash).
    """
    k = kube_for(lab, kube)
    started_wall = time.monotonic()
    deadline = started_wall + k.wall_timeout(timeout)
    cmd = f"kubectl rollout status deployment/{server.name} -n {server.namespace} --timeout={timeout:g}s"
    readiness: Readiness | None = None
    live = LiveView(lambda r: r.lines(), headless=lab.headless if lab is not None else None)
    try:
        while True:
            dep = k.get("apps/v1", "Deployment", server.name, server.namespace)
            if int((dep.get("spec") or {}).get("replicas", 1)) == 0:
                raise Invalid(
                    f"deployment/{server.name} in {server.namespace} has 0 replicas: nothing will become Ready",
                    "deploy it again (serving.deploy) or scale it up (compute.scale)",
                )
            pods = _pods(k, server)
            if readiness is None:
                first = min((status.parse_time(p["metadata"].get("creationTimestamp")) or 0.0 for p in pods), default=0)
                readiness = Readiness(
                    server.name, server.namespace, first or k.cluster_now([dep]), time_scale=k.time_scale, kubectl=cmd
                )
            events = k.list("v1", "Event", server.namespace).items if pods else []
            for pod in pods:
                _pod_timeline(k, readiness, pod, events)
                node = (pod.get("spec") or {}).get("nodeName")
                if node and not readiness.node:
                    readiness.node = _node_summary(k, node)
            rolled = status.rollout(dep)
            readiness.ready = rolled.done and bool(pods)
            live.show(readiness)
            if readiness.ready:
                break
            failing = next((f for p in pods if (f := _failing(p))), "")
            if failing or rolled.failed or time.monotonic() >= deadline:
                raise _not_ready(k, dep, server, failing or rolled.failed, timeout)
            time.sleep(poll_seconds(k))
    finally:
        live.close()
    readiness.elapsed_wall_s = time.monotonic() - started_wall
    return readiness


def _not_ready(k: Kube, dep: dict[str, Any], server: ModelServer, failing: str, timeout: float) -> WaitTimeout:
    what = f"deployment/{server.name} in {server.namespace}"
    headline = f"{what} is failing: {failing}" if failing else f"{what} was not Ready within {timeout:g}s"
    try:
        diagnosis = explain_object(k, dep)
    except LabkitError as exc:
        return WaitTimeout(f"{headline} (details unavailable: {exc.what})", "kubectl describe the pod")
    return WaitTimeout(
        f"{headline}\n{diagnosis.text('  ')}",
        diagnosis.fix or "read the reasons above; kubectl describe pod and kubectl logs say more",
    )


# ---------------------------------------------------------------------------------------------- deploy


@dataclass(frozen=True)
class Deployed(Shown):
    """A model server applied (and, unless ``wait=False``, Ready)."""

    server: ModelServer
    applied: ApplyResult
    readiness: Readiness | None = None

    @property
    def kubectl(self) -> str:
        return self.applied.kubectl

    def __str__(self) -> str:
        lines = [str(item) for item in self.applied.items]
        if self.readiness is not None:
            lines.append(str(self.readiness))
        else:
            lines.append(
                f"not waiting: follow it with serving.wait_ready(...) or kubectl get pods -n {self.server.namespace}"
            )
        return "\n".join(lines)


def deploy(
    server: ModelServer,
    *,
    lab: LabContext | None = None,
    kube: Any = None,
    wait: bool = True,
    timeout: float = READY_TIMEOUT_S,
    show_kubectl: bool = False,
) -> Deployed:
    """Apply a model server (namespace, cache, Deployment, Service) and wait until it is Ready.

    The apply takes over fields another manager changed (``--force-conflicts``): deploying a server
    that was scaled to zero brings it back to ``server.replicas``.

    Raises:
        WaitTimeout: see :func:`wait_ready`.
    """
    k = kube_for(lab, kube)
    # force: the ModelServer is the source of truth, also for fields a scale (kubectl scale, scale_to_zero) took over.
    applied = kube_mod.apply(
        [_namespace(server.namespace), *manifests(server)], kube=k, force=True, show_kubectl=show_kubectl
    )
    if not wait:
        return Deployed(server, applied)
    return Deployed(server, applied, wait_ready(server, kube=k, timeout=timeout))


def delete(server: ModelServer, *, lab: LabContext | None = None, kube: Any = None) -> ApplyResult:
    """Delete a model server's objects (its namespace stays)."""
    return kube_mod.delete(manifests(server), kube=kube_for(lab, kube))


def why_pending(
    server: ModelServer, *, lab: LabContext | None = None, kube: Any = None, timeout: float = 120.0
) -> PendingExplanation:
    """Why the server's pod is Pending, once the scheduler and Karpenter have had their say."""
    return _why_pending(
        namespace=server.namespace,
        label_selector=f"app.kubernetes.io/name={server.name}",
        lab=lab,
        kube=kube,
        timeout=timeout,
    )


def url(server: ModelServer, *, lab: LabContext | None = None, kube: Any = None) -> str:
    """A URL for the server's Service from here (direct on embedded, a port-forward elsewhere)."""
    return kube_mod.service_url(server.name, server.namespace, kube=kube_for(lab, kube))


# ---------------------------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Sample:
    """One Prometheus sample: ``name{labels} value``."""

    name: str
    labels: dict[str, str]
    value: float


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse_metrics(text: str) -> list[Sample]:
    """Samples of a Prometheus text exposition (comments skipped; unparseable lines ignored) (pure)."""
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels: dict[str, str] = {}
        body = (m.group(2) or "{}")[1:-1]
        pos = 0
        while pos < len(body):
            lm = _LABEL.match(body, pos)
            if not lm:
                break
            labels[lm.group(1)] = _unescape(lm.group(2))
            pos = lm.end()
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out.append(Sample(m.group(1), labels, value))
    return out


def _total(samples: Iterable[Sample], *names: str) -> float:
    for name in names:
        found = [s.value for s in samples if s.name == name]
        if found:
            return float(sum(found))
    return 0.0


@dataclass(frozen=True)
class ServerMetrics(Shown):
    """What a vLLM server's ``/metrics`` says, in a few numbers a platform engineer reads.

    Gauges are the state at scrape time; counters and histogram sums/counts are totals since the
    server started (use :meth:`since` for what happened between two scrapes). Seconds are the
    server's own measurements (cluster time on the embedded target).
    """

    running: float = 0.0
    waiting: float = 0.0
    kv_cache_usage: float = 0.0
    prompt_tokens: float = 0.0
    generation_tokens: float = 0.0
    requests: float = 0.0
    preemptions: float = 0.0
    ttft_count: float = 0.0
    ttft_sum: float = 0.0
    itl_count: float = 0.0
    itl_sum: float = 0.0
    e2e_count: float = 0.0
    e2e_sum: float = 0.0
    queue_count: float = 0.0
    queue_sum: float = 0.0
    gpu_blocks: int = 0
    block_size: int = 0
    model: str = ""
    source: str = ""

    @classmethod
    def from_text(cls, text: str, source: str = "") -> ServerMetrics:
        """Read vLLM's exposition (V1 names, with the V0 names as fallbacks) (pure)."""
        s = parse_metrics(text)
        info = next((x.labels for x in s if x.name == "vllm:cache_config_info"), {})
        model = next((x.labels.get("model_name", "") for x in s if x.name.startswith("vllm:")), "")
        return cls(
            running=_total(s, "vllm:num_requests_running"),
            waiting=_total(s, "vllm:num_requests_waiting"),
            kv_cache_usage=_total(s, "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
            prompt_tokens=_total(s, "vllm:prompt_tokens_total"),
            generation_tokens=_total(s, "vllm:generation_tokens_total"),
            requests=_total(s, "vllm:request_success_total"),
            preemptions=_total(s, "vllm:num_preemptions_total"),
            ttft_count=_total(s, "vllm:time_to_first_token_seconds_count"),
            ttft_sum=_total(s, "vllm:time_to_first_token_seconds_sum"),
            itl_count=_total(s, "vllm:inter_token_latency_seconds_count", "vllm:time_per_output_token_seconds_count"),
            itl_sum=_total(s, "vllm:inter_token_latency_seconds_sum", "vllm:time_per_output_token_seconds_sum"),
            e2e_count=_total(s, "vllm:e2e_request_latency_seconds_count"),
            e2e_sum=_total(s, "vllm:e2e_request_latency_seconds_sum"),
            queue_count=_total(s, "vllm:request_queue_time_seconds_count"),
            queue_sum=_total(s, "vllm:request_queue_time_seconds_sum"),
            gpu_blocks=int(float(info.get("num_gpu_blocks") or 0)),
            block_size=int(float(info.get("block_size") or 0)),
            model=model,
            source=source,
        )

    def since(self, before: ServerMetrics) -> ServerMetrics:
        """Counters and histograms as differences from ``before``; gauges as now."""
        diff = {
            name: getattr(self, name) - getattr(before, name)
            for name in (
                "prompt_tokens",
                "generation_tokens",
                "requests",
                "preemptions",
                "ttft_count",
                "ttft_sum",
                "itl_count",
                "itl_sum",
                "e2e_count",
                "e2e_sum",
                "queue_count",
                "queue_sum",
            )
        }
        return ServerMetrics(**{**self.__dict__, **diff})

    @staticmethod
    def _mean(total: float, count: float) -> float | None:
        return total / count if count > 0 else None

    @property
    def mean_ttft_s(self) -> float | None:
        return self._mean(self.ttft_sum, self.ttft_count)

    @property
    def mean_itl_s(self) -> float | None:
        return self._mean(self.itl_sum, self.itl_count)

    @property
    def mean_e2e_s(self) -> float | None:
        return self._mean(self.e2e_sum, self.e2e_count)

    @property
    def mean_queue_s(self) -> float | None:
        return self._mean(self.queue_sum, self.queue_count)

    @property
    def kv_cache_tokens(self) -> int:
        """Tokens the KV cache holds in all (GPU blocks x block size)."""
        return self.gpu_blocks * self.block_size

    def rows(self) -> list[tuple[str, str, str]]:
        """``(metric, value, what it means)`` rows."""

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value * 1000:.1f} ms"

        kv_tokens = f" of {self.kv_cache_tokens:,} tokens" if self.kv_cache_tokens else ""
        return [
            ("vllm:num_requests_running", f"{self.running:g}", "requests in the running batch now"),
            ("vllm:num_requests_waiting", f"{self.waiting:g}", "requests queued: no batch slot or KV cache free"),
            ("vllm:kv_cache_usage_perc", f"{self.kv_cache_usage:.1%}{kv_tokens}", "KV cache in use (1 = full)"),
            ("vllm:prompt_tokens_total", f"{self.prompt_tokens:,.0f}", "prompt tokens prefilled"),
            ("vllm:generation_tokens_total", f"{self.generation_tokens:,.0f}", "tokens generated"),
            ("vllm:request_success_total", f"{self.requests:,.0f}", "requests finished"),
            (
                "vllm:num_preemptions_total",
                f"{self.preemptions:,.0f}",
                "sequences evicted because the KV cache ran out",
            ),
            ("vllm:time_to_first_token_seconds", ms(self.mean_ttft_s), "mean TTFT (queue + prefill)"),
            ("vllm:inter_token_latency_seconds", ms(self.mean_itl_s), "mean time between output tokens"),
            ("vllm:request_queue_time_seconds", ms(self.mean_queue_s), "mean time waiting before the first step"),
        ]

    def table_text(self) -> str:
        rows = self.rows()
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        return "\n".join(f"{a:<{w0}}  {b:>{w1}}  {c}" for a, b, c in rows)

    def __str__(self) -> str:
        head = f"/metrics of {self.model or 'the server'}" + (f" ({self.source})" if self.source else "")
        return f"{head}\n{self.table_text()}"

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><td><code>{html.escape(a)}</code></td><td style='text-align:right'>{html.escape(b)}</td>"
            f"<td style='text-align:left'>{html.escape(c)}</td></tr>"
            for a, b, c in self.rows()
        )
        head = f"/metrics of {self.model or 'the server'}"
        return (
            f"<table><caption style='text-align:left'>{html.escape(head)}</caption>"
            f"<thead><tr><th>metric</th><th>value</th><th style='text-align:left'>meaning</th></tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )


def scrape(base_url: str, *, timeout: float = 10.0) -> ServerMetrics:
    """Fetch and read ``<base_url>/metrics``.

    Raises:
        Unreachable: the server did not answer.
    """
    target = base_url.rstrip("/").removesuffix("/v1") + "/metrics"
    try:
        with urllib.request.urlopen(target, timeout=timeout) as resp:
            text = resp.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        raise Unreachable(
            f"cannot read {target}: {exc}", "check the server is Ready (serving.wait_ready) and its URL"
        ) from exc
    return ServerMetrics.from_text(text, source=target)


def metrics(server: ModelServer, *, lab: LabContext | None = None, kube: Any = None) -> ServerMetrics:
    """The server's ``/metrics`` (one replica's: the one the Service URL reaches)."""
    return scrape(url(server, lab=lab, kube=kube))


# ---------------------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Streamed(Shown):
    """One streamed chat request, timed by the client and by the server.

    Attributes:
        result: what the client received (text, usage, wall-clock timings).
        server: the server's measurements of this request (``/metrics`` before and after).
        time_scale: the cluster clock's speed-up (client times are multiplied by it).
    """

    result: client.ChatResult
    server: ServerMetrics
    time_scale: float = 1.0

    @property
    def ttft_s(self) -> float | None:
        """TTFT as the server measured it (queue + prefill), cluster seconds."""
        return self.server.mean_ttft_s

    @property
    def tpot_s(self) -> float | None:
        """Mean time between output tokens as the server measured it, cluster seconds."""
        return self.server.mean_itl_s

    @property
    def client_ttft_s(self) -> float | None:
        """TTFT the client saw (includes HTTP and the client), converted to cluster seconds."""
        return None if self.result.ttft_s is None else self.result.ttft_s * self.time_scale

    @property
    def client_tpot_s(self) -> float | None:
        """TPOT the client saw: (E2E - TTFT) / (tokens - 1), converted to cluster seconds."""
        return None if self.result.tpot_s is None else self.result.tpot_s * self.time_scale

    def __str__(self) -> str:
        r = self.result
        text = r.text if len(r.text) <= 160 else r.text[:157] + "..."

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value * 1000:.1f} ms"

        others = f" (averaged over {self.server.ttft_count:g} requests)" if self.server.ttft_count > 1 else ""
        lines = [
            f"{r.completion_tokens} tokens for a {r.prompt_tokens}-token prompt ({r.finish_reason}): {text!r}",
            f"  server: TTFT {ms(self.ttft_s)}, TPOT {ms(self.tpot_s)}{others}",
        ]
        if self.time_scale == 1.0:
            lines.append(
                f"  client: TTFT {ms(self.client_ttft_s)}, TPOT {ms(self.client_tpot_s)}, E2E {r.e2e_s:.2f} s "
                "(adds the network, the port-forward and the client)"
            )
        else:
            lines.append(
                f"  client: {r.e2e_s * 1000:.0f} ms of wall time; at time scale {self.time_scale:g} every wall "
                f"millisecond of HTTP overhead counts {self.time_scale:g} ms, so read the server's numbers"
            )
        return "\n".join(lines)


def stream(
    server: ModelServer,
    prompt: str | list[dict[str, Any]],
    *,
    max_tokens: int = 128,
    lab: LabContext | None = None,
    kube: Any = None,
    echo: bool = False,
    **kwargs: Any,
) -> Streamed:
    """Send one streamed chat request and time it from both ends.

    The server's view (TTFT, inter-token latency) comes from the difference of its ``/metrics``
    histograms before and after; the client's from the stream itself. With ``echo`` the text is
    printed as it arrives.
    """
    k = kube_for(lab, kube)
    base = url(server, kube=k)
    before = scrape(base)
    result: client.ChatResult | None = None
    for piece in client.stream_chat(base, server.client_model_name, prompt, max_tokens=max_tokens, **kwargs):
        if isinstance(piece, client.ChatResult):
            result = piece
        elif echo:
            print(piece, end="", flush=True)
    if echo:
        print()
    assert result is not None  # stream_chat always ends with its ChatResult
    return Streamed(result, scrape(base).since(before), k.time_scale)


@dataclass(frozen=True)
class LoadSnapshot(Shown):
    """The server's ``/metrics`` at the busiest moment of a burst of concurrent requests, and after it.

    Counters and histograms in ``peak`` and ``after`` count from the start of the burst.
    """

    concurrency: int
    prompt_tokens: int
    max_tokens: int
    peak: ServerMetrics
    after: ServerMetrics
    failures: tuple[str, ...] = ()

    def __str__(self) -> str:
        lines = [
            f"{self.concurrency} concurrent requests of ~{self.prompt_tokens} prompt + {self.max_tokens} output "
            "tokens; /metrics at the busiest moment:",
            self.peak.table_text(),
            f"after the burst: {self.after.running:g} running, {self.after.waiting:g} waiting, "
            f"KV cache {self.after.kv_cache_usage:.1%}; {self.after.requests:,.0f} requests finished, "
            f"{self.after.preemptions:,.0f} preemptions",
        ]
        if self.failures:
            lines.append(f"{len(self.failures)} request(s) failed, e.g. {self.failures[0]}")
        return "\n".join(lines)


def _burst_request(base_url: str, body: bytes, ready: threading.Barrier, timeout: float) -> str:
    """One request of a burst: connect first, wait for the others, then send; returns an error or ``""``.

    Plain ``http.client`` rather than the OpenAI client: its per-request set-up would spread a burst
    over tens of milliseconds, which a fast cluster clock turns into seconds.
    """
    parts = urlsplit(base_url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.connect()
        ready.wait()
        conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        return "" if resp.status == 200 else f"HTTP {resp.status}: {data[:200]!r}"
    except (OSError, http.client.HTTPException, threading.BrokenBarrierError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


def metrics_under_load(
    server: ModelServer,
    *,
    concurrency: int = 24,
    prompt_tokens: int = 1000,
    max_tokens: int = 256,
    lab: LabContext | None = None,
    kube: Any = None,
    timeout: float = 900.0,
) -> LoadSnapshot:
    """Send ``concurrency`` requests at once and read ``/metrics`` while they run.

    Each request has a prompt of about ``prompt_tokens`` tokens and generates exactly ``max_tokens``
    (``ignore_eos``). When their KV cache needs exceed the server's, some wait or are preempted: the
    snapshot shows ``num_requests_waiting`` above zero and the KV cache near full.

    Args:
        timeout: cluster seconds a request may take.
    """
    k = kube_for(lab, kube)
    base = url(server, kube=k)
    words = " ".join(["data"] * max(1, prompt_tokens - 10))
    ready = threading.Barrier(concurrency)
    bodies = [
        json.dumps(
            {
                "model": server.client_model_name,
                "messages": [{"role": "user", "content": f"request {i}: {words}"}],
                "max_tokens": max_tokens,
                "ignore_eos": True,
            }
        ).encode()
        for i in range(concurrency)
    ]
    wall_timeout = k.wall_timeout(timeout)
    start = peak = scrape(base)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(_burst_request, base, body, ready, wall_timeout) for body in bodies]
        while not all(f.done() for f in futures):
            now = scrape(base)
            if (now.running + now.waiting, now.kv_cache_usage) > (peak.running + peak.waiting, peak.kv_cache_usage):
                peak = now
            time.sleep(max(0.02, 1.0 / k.time_scale))
        failures = tuple(err for f in futures if (err := f.result()))
    after = scrape(base)
    return LoadSnapshot(concurrency, prompt_tokens, max_tokens, peak.since(start), after.since(start), failures)


# ---------------------------------------------------------------------------------------------- scale to zero


@dataclass(frozen=True)
class ScaledToZero(Shown):
    """A model server scaled to zero replicas: its pods are gone, its GPU node is empty."""

    server: str
    namespace: str
    before: int
    pods_gone_after_s: float
    nodes: tuple[str, ...]
    kubectl: str

    def __str__(self) -> str:
        lines = [
            f"deployment/{self.server} -n {self.namespace} scaled from {self.before} to 0; its pods were gone after "
            f"{clock_text(self.pods_gone_after_s)} (graceful shutdown)"
        ]
        if self.nodes:
            lines.append(
                f"  now empty: {', '.join(self.nodes)}; Karpenter removes an empty node after the pool's "
                "consolidateAfter"
            )
        return "\n".join(lines)


def scale_to_zero(
    server: ModelServer,
    *,
    lab: LabContext | None = None,
    kube: Any = None,
    timeout: float = SCALE_DOWN_TIMEOUT_S,
    show_kubectl: bool = False,
) -> ScaledToZero:
    """Scale the server's Deployment to 0 and wait until its pods are gone (their GPUs are free).

    Raises:
        WaitTimeout: pods did not terminate in time (the message says what holds them).
    """
    k = kube_for(lab, kube)
    nodes = tuple(
        sorted({str(p["spec"]["nodeName"]) for p in _pods(k, server) if (p.get("spec") or {}).get("nodeName")})
    )
    started = k.cluster_now()
    scaled = scale(f"deployment/{server.name}", 0, namespace=server.namespace, kube=k, show_kubectl=show_kubectl)
    kube_mod.wait_deleted(
        "pods",
        namespace=server.namespace,
        label_selector=f"app.kubernetes.io/name={server.name}",
        timeout=timeout,
        kube=k,
        progress=False,
    )
    return ScaledToZero(server.name, server.namespace, scaled.before, k.cluster_now() - started, nodes, scaled.kubectl)


# ---------------------------------------------------------------------------------------------- capacity plans


@dataclass(frozen=True)
class Sla:
    """A named service level: latency targets and the load they must hold at.

    Attributes:
        name: e.g. ``interactive`` or ``batch``.
        slo: TTFT/TPOT targets (steady-state means).
        concurrency: requests in flight (closed loop); or give ``rate``.
        rate: requests per second (open loop).
        prompt_tokens: input tokens per request.
        output_tokens: output tokens per request.
    """

    name: str
    slo: SLO
    concurrency: int | None = None
    rate: float | None = None
    prompt_tokens: int = 1024
    output_tokens: int = 256

    def describe(self) -> str:
        load = f"{self.concurrency} in flight" if self.concurrency else f"{self.rate:g} req/s"
        targets = []
        if self.slo.ttft_ms is not None:
            targets.append(f"TTFT <= {self.slo.ttft_ms:g} ms")
        if self.slo.tpot_ms is not None:
            targets.append(f"TPOT <= {self.slo.tpot_ms:g} ms")
        shape = f"{self.prompt_tokens}+{self.output_tokens} tokens"
        return f"{self.name}: {', '.join(targets) or 'no target'}; {load}, {shape}"


_REJECTION_KINDS = (
    ("does not fit", "the weights or KV cache do not fit"),
    ("over the SLO even with one request", "too slow even with one request per server"),
    ("needs more than", "would need too many instances"),
    ("no on-demand price", "no on-demand price"),
    ("heads do not split", "the model cannot split over its GPUs"),
)


def rejection_summary(plan: CapacityPlan) -> list[str]:
    """Rejected instance types grouped by kind of reason, each with one example (pure)."""
    groups: dict[str, list[str]] = {}
    examples: dict[str, str] = {}
    for r in plan.rejected:
        label = next((text for key, text in _REJECTION_KINDS if key in r.reason), "other")
        groups.setdefault(label, []).append(r.instance_type)
        examples.setdefault(label, f"{r.instance_type}: {r.reason}")
    return [f"{len(types)} {label} (e.g. {examples[label]})" for label, types in groups.items()]


@dataclass(frozen=True)
class PlanMatrix(Shown):
    """Capacity plans for each model and SLA: the cheapest instance, its cost, and why others fail."""

    models: tuple[str, ...]
    slas: tuple[Sla, ...]
    plans: dict[tuple[str, str], CapacityPlan]

    def plan(self, model: str, sla: str) -> CapacityPlan:
        """The full plan of one model and SLA (``str()`` it for every candidate and rejection)."""
        return self.plans[(model, sla)]

    def rows(self) -> list[dict[str, Any]]:
        """One row per model and SLA."""
        out = []
        for model in self.models:
            for sla in self.slas:
                plan = self.plans[(model, sla.name)]
                row: dict[str, Any] = {"model": model, "sla": sla.name}
                if plan.ranked:
                    best = plan.best
                    row.update(
                        instance=best.instance_type.name,
                        gpu=f"{best.instance_type.gpu_count}x {best.instance_type.gpu}",
                        instances=best.instances,
                        tensor_parallel=best.tensor_parallel,
                        usd_per_hour=round(best.price_per_hour, 2),
                        usd_per_1m_output_tokens=round(best.cost_per_million_output_tokens, 2),
                        ttft_ms=round(best.prediction.ttft_ms),
                        tpot_ms=round(best.prediction.tpot_ms, 1),
                    )
                else:
                    row.update(instance="none meets the SLA")
                row["candidates"] = len(plan.ranked)
                row["rejected"] = len(plan.rejected)
                out.append(row)
        return out

    def _lines(self) -> list[str]:
        lines = ["SLAs: " + " | ".join(s.describe() for s in self.slas)]
        for row in self.rows():
            head = f"{row['model']} x {row['sla']}: "
            if "usd_per_hour" in row:
                head += (
                    f"{row['instances']}x {row['instance']} ({row['gpu']}, TP{row['tensor_parallel']}) "
                    f"${row['usd_per_hour']:.2f}/h, ${row['usd_per_1m_output_tokens']:.2f}/1M output tokens, "
                    f"TTFT {row['ttft_ms']} ms, TPOT {row['tpot_ms']} ms"
                )
            else:
                head += row["instance"]
            lines.append(head)
            lines.append(f"    {row['candidates']} instance types could serve it; rejected:")
            lines += [f"      {r}" for r in rejection_summary(self.plans[(row["model"], row["sla"])])]
        return lines

    def __str__(self) -> str:
        return "\n".join(self._lines())

    def _repr_html_(self) -> str:
        cols = (
            "model",
            "sla",
            "instance",
            "gpu",
            "instances",
            "usd_per_hour",
            "usd_per_1m_output_tokens",
            "ttft_ms",
            "tpot_ms",
            "candidates",
            "rejected",
        )
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in self.rows()
        )
        reasons = "\n".join(
            f"{m} x {s.name}: " + "; ".join(rejection_summary(self.plans[(m, s.name)]))
            for m in self.models
            for s in self.slas
        )
        slas = "<br>".join(html.escape(s.describe()) for s in self.slas)
        return f"<p>{slas}</p><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{_pre(reasons)}"


def plan_capacity(
    models: Sequence[str],
    slas: Sequence[Sla],
    *,
    dtype: str | None = None,
    candidates: Iterable[str] | None = None,
) -> PlanMatrix:
    """Plan every model against every SLA with :func:`labkit.planner.cheapest_instance` (pure)."""
    chosen = list(candidates) if candidates is not None else None
    plans = {
        (model, sla.name): cheapest_instance(
            model,
            sla.slo,
            prompt_tokens=sla.prompt_tokens,
            output_tokens=sla.output_tokens,
            concurrency=sla.concurrency,
            rate=sla.rate,
            dtype=dtype,
            candidates=chosen,
        )
        for model in models
        for sla in slas
    }
    return PlanMatrix(tuple(models), tuple(slas), plans)


__all__ = [
    "Deployed",
    "LoadSnapshot",
    "PlanMatrix",
    "Readiness",
    "Sample",
    "ScaledToZero",
    "ServerMetrics",
    "Sla",
    "Streamed",
    "TokenSecret",
    "delete",
    "deploy",
    "hf_token_secret",
    "metrics",
    "metrics_under_load",
    "parse_metrics",
    "plan_capacity",
    "rejection_summary",
    "scale_to_zero",
    "scrape",
    "stream",
    "url",
    "wait_ready",
    "why_pending",
]
