"""Resolving a Service to a URL this process can call.

The path is the same on every target: Service -> its ready endpoints
(EndpointSlices, else Endpoints, else its selector's ready pods) -> a pod and
container port. Then:

- ``embedded``: the container runs in this machine; the kubelet simulation wrote
  its local address on the pod as ``embedded.labkit.dev/address-<container>``
  (``127.0.0.1:PORT``), so the URL points straight at it;
- ``kind`` and ``eks``: a port-forward through the official client
  (``kubernetes.stream.portforward``) served on a local ``127.0.0.1`` port by a
  background :class:`~labkit.kube.portforward.Forwarder`; it closes with the
  endpoint (or with its :class:`~labkit.kube.client.Kube`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from labkit.errors import Invalid, LabkitError, NotFound
from labkit.kube import kubectl, status
from labkit.kube.client import Kube, resolve
from labkit.kube.portforward import Forwarder

ADDRESS_ANNOTATION = "embedded.labkit.dev/address-"
MODES = ("auto", "direct", "port-forward")


@dataclass(frozen=True)
class Backend:
    """A ready endpoint of a Service: the pod behind it and the port on that pod (``None``: resolve from spec)."""

    pod: str
    namespace: str
    port: int | None


# ---------------------------------------------------------------------------------------------- pure resolution


def pick_port(svc: dict[str, Any], port: int | str | None) -> dict[str, Any]:
    """The Service port meant by ``port`` (number or name); ``None`` picks the only port, else ``http``."""
    ports = (svc.get("spec") or {}).get("ports") or []
    name = (svc.get("metadata") or {}).get("name")
    listed = ", ".join(f"{p.get('name') or '<unnamed>'}={p.get('port')}" for p in ports) or "none"
    if not ports:
        raise Invalid(f"Service {name} has no ports", "add spec.ports to the Service")
    if port is None:
        if len(ports) == 1:
            return ports[0]
        for p in ports:
            if p.get("name") in ("http", "web", "api"):
                return p
        raise Invalid(f"Service {name} has several ports ({listed})", "pass port= with the number or name you want")
    for p in ports:
        if (isinstance(port, int) and p.get("port") == port) or (isinstance(port, str) and p.get("name") == port):
            return p
    if isinstance(port, str) and port.isdigit():
        return pick_port(svc, int(port))
    raise Invalid(f"Service {name} has no port {port!r} (it has {listed})", "pass one of its ports")


def backends_from_slices(svc_port: dict[str, Any], slices: Sequence[dict[str, Any]]) -> list[Backend]:
    """Ready pod endpoints of EndpointSlices, with the slice's port for ``svc_port`` (matched by name)."""
    wanted = svc_port.get("name") or ""
    out = []
    for s in slices:
        port = next((p.get("port") for p in s.get("ports") or [] if (p.get("name") or "") == wanted), None)
        for ep in s.get("endpoints") or []:
            ready = (ep.get("conditions") or {}).get("ready")
            ref = ep.get("targetRef") or {}
            if ready is False or ref.get("kind") != "Pod" or not ref.get("name"):
                continue
            ns = ref.get("namespace") or (s.get("metadata") or {}).get("namespace") or "default"
            out.append(Backend(str(ref["name"]), str(ns), int(port) if port else None))
    return sorted(set(out), key=lambda b: (b.namespace, b.pod))


def backends_from_endpoints(svc_port: dict[str, Any], endpoints: dict[str, Any] | None) -> list[Backend]:
    """Ready pod addresses of a (legacy) Endpoints object."""
    if not endpoints:
        return []
    wanted = svc_port.get("name") or ""
    out = []
    for subset in endpoints.get("subsets") or []:
        port = next((p.get("port") for p in subset.get("ports") or [] if (p.get("name") or "") == wanted), None)
        for addr in subset.get("addresses") or []:
            ref = addr.get("targetRef") or {}
            if ref.get("kind") == "Pod" and ref.get("name"):
                ns = ref.get("namespace") or (endpoints.get("metadata") or {}).get("namespace") or "default"
                out.append(Backend(str(ref["name"]), str(ns), int(port) if port else None))
    return sorted(set(out), key=lambda b: (b.namespace, b.pod))


def container_port(pod: dict[str, Any], target: int | str | None) -> tuple[str | None, int | None]:
    """(container name, port number) on ``pod`` for a Service ``targetPort`` (number or port name)."""
    containers = (pod.get("spec") or {}).get("containers") or []
    for c in containers:
        for p in c.get("ports") or []:
            if (isinstance(target, int) and p.get("containerPort") == target) or (
                isinstance(target, str) and p.get("name") == target
            ):
                return str(c.get("name")), int(p["containerPort"])
    if isinstance(target, int):
        return (str(containers[0].get("name")) if len(containers) == 1 else None), target
    return None, None


def embedded_address(pod: dict[str, Any], target: int | str | None) -> str | None:
    """The ``127.0.0.1:PORT`` the embedded kubelet published for the container serving ``target``."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    published = {k[len(ADDRESS_ANNOTATION) :]: v for k, v in annotations.items() if k.startswith(ADDRESS_ANNOTATION)}
    if not published:
        return None
    container, _ = container_port(pod, target)
    if container and container in published:
        return str(published[container])
    if len(published) == 1:
        return str(next(iter(published.values())))
    return None


# ---------------------------------------------------------------------------------------------- endpoints


@dataclass
class ServiceEndpoint:
    """A Service made callable from this process.

    Attributes:
        url: ``http://127.0.0.1:PORT`` (direct, or the local end of a port-forward).
        service: the Service's name.
        namespace: its namespace.
        port: the Service port used.
        pod: the pod first chosen to serve (port-forwards pick again if it goes away).
        mode: ``direct`` or ``port-forward``.
        kubectl: the equivalent ``kubectl port-forward`` command.
    """

    url: str
    service: str
    namespace: str
    port: int
    pod: str
    mode: str
    kubectl: str
    _forwarder: Forwarder | None = field(default=None, repr=False)

    def close(self) -> None:
        """Stop the port-forward, if any (direct endpoints hold nothing)."""
        if self._forwarder is not None:
            self._forwarder.close()

    @property
    def closed(self) -> bool:
        return self._forwarder is not None and self._forwarder.closed

    def __enter__(self) -> ServiceEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __str__(self) -> str:
        return self.url


def ready_backends(kube: Kube, svc: dict[str, Any], svc_port: dict[str, Any]) -> list[Backend]:
    """The Service's ready pod endpoints: EndpointSlices, else Endpoints, else ready pods of its selector."""
    meta = svc.get("metadata") or {}
    name, ns = str(meta.get("name")), str(meta.get("namespace") or "default")
    found: list[Backend] = []
    try:
        slices = kube.list(
            "discovery.k8s.io/v1", "EndpointSlice", ns, label_selector=f"kubernetes.io/service-name={name}"
        )
        found = backends_from_slices(svc_port, slices.items)
    except NotFound:
        found = []
    if not found:
        found = backends_from_endpoints(svc_port, kube.try_get("v1", "Endpoints", name, ns))
    if not found:
        selector = (svc.get("spec") or {}).get("selector") or {}
        if selector:
            label = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
            pods = kube.list("v1", "Pod", ns, label_selector=label).items
            found = [
                Backend(str(p["metadata"]["name"]), ns, None)
                for p in pods
                if status.pod_ready(p) and not (p.get("metadata") or {}).get("deletionTimestamp")
            ]
    return found


def _no_backend_error(kube: Kube, svc: dict[str, Any]) -> NotFound:
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    name, ns = meta.get("name"), meta.get("namespace") or "default"
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items()))
    if not selector:
        return NotFound(
            f"Service {ns}/{name} has no selector and no ready endpoints",
            "give it a selector matching its pods, or create its endpoints",
        )
    pods = kube.list("v1", "Pod", ns, label_selector=selector).items
    if not pods:
        return NotFound(
            f"Service {ns}/{name} selects no pods (selector {selector})",
            f"check the pods' labels match the selector (kubectl get pods -n {ns} --show-labels)",
        )
    states = ", ".join(f"{p['metadata']['name']} {status.pod_phase_text(p)}" for p in pods[:5])
    return NotFound(
        f"Service {ns}/{name} has no ready endpoint yet (pods: {states})",
        f"wait for its pods to be Ready (wait_for('pods', label_selector='{selector}', namespace='{ns}')); "
        "explain_pod() tells why one is not",
    )


def _pf_connect(kube: Kube, namespace: str, pod: str, port: int) -> Any:
    """Open one port-forward stream to ``pod:port``; returns its socket."""
    from kubernetes import client as k8s
    from kubernetes.stream import portforward

    # A dedicated ApiClient: portforward() temporarily swaps the client's request method.
    api = k8s.ApiClient(configuration=kube.api_client.configuration)
    try:
        forward = portforward(
            k8s.CoreV1Api(api).connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port)
        )
    except Exception as exc:
        api.close()
        raise NotFound(
            f"cannot port-forward to pod {namespace}/{pod} port {port}: {exc}",
            "check the pod is Running and you may create pods/portforward (kubectl auth can-i create pods/portforward)",
        ) from exc
    sock = forward.socket(port)
    sock.setblocking(True)
    return sock


def open_service(
    name: str,
    namespace: str = "default",
    port: int | str | None = None,
    *,
    kube: Any = None,
    scheme: str = "http",
    mode: str = "auto",
    local_port: int = 0,
) -> ServiceEndpoint:
    """Make a Service callable from here; ``close()`` the result when done (port-forwards hold a thread).

    Args:
        name: the Service.
        namespace: its namespace.
        port: the Service port (number or name); ``None`` when it has one (or one named ``http``).
        kube: a :class:`Kube` or platform; default: the current lab's.
        scheme: URL scheme.
        mode: ``auto`` (direct on embedded, port-forward elsewhere), ``direct`` or ``port-forward``.
        local_port: local port for a port-forward (0: any free port).

    Raises:
        NotFound: no such Service, or no ready endpoint (the message says which pods exist and their state).
    """
    if mode not in MODES:
        raise Invalid(f"unknown mode {mode!r}", f"use one of {', '.join(MODES)}")
    k = resolve(kube)
    svc = k.get("v1", "Service", name, namespace)
    svc_port = pick_port(svc, port)
    number = int(svc_port.get("port") or 0)
    spec = svc.get("spec") or {}
    cmd = kubectl.port_forward_cmd(f"svc/{name}", namespace=namespace, local_port=local_port, remote_port=number)
    if spec.get("type") == "ExternalName":
        url = f"{scheme}://{spec.get('externalName')}:{number}"
        return ServiceEndpoint(url, name, namespace, number, "", "direct", cmd)
    found = ready_backends(k, svc, svc_port)
    if not found:
        raise _no_backend_error(k, svc)
    target = svc_port.get("targetPort", number)
    first = k.get("v1", "Pod", found[0].pod, found[0].namespace)
    direct = mode == "direct" or (
        mode == "auto" and (k.target == "embedded" or (k.target is None and embedded_address(first, target)))
    )
    if direct:
        for backend in found:
            pod = first if backend.pod == found[0].pod else k.get("v1", "Pod", backend.pod, backend.namespace)
            address = embedded_address(pod, target)
            if address:
                return ServiceEndpoint(f"{scheme}://{address}", name, namespace, number, backend.pod, "direct", cmd)
        raise NotFound(
            f"the pods of Service {namespace}/{name} publish no local address for port {target}",
            "on the embedded target a container serves only if its image has a simulator (runtime) registered; "
            "check the image name, or use mode='port-forward' on a real cluster",
        )
    return _forward(k, svc, svc_port, found, scheme=scheme, local_port=local_port, cmd=cmd)


def _forward(
    k: Kube,
    svc: dict[str, Any],
    svc_port: dict[str, Any],
    found: list[Backend],
    *,
    scheme: str,
    local_port: int,
    cmd: str,
) -> ServiceEndpoint:
    meta = svc.get("metadata") or {}
    name, namespace = str(meta.get("name")), str(meta.get("namespace") or "default")
    target = svc_port.get("targetPort", svc_port.get("port"))
    lock = threading.Lock()
    current: list[Backend] = [found[0]]

    def pod_port(backend: Backend) -> int:
        if backend.port:
            return backend.port
        _, number = container_port(k.get("v1", "Pod", backend.pod, backend.namespace), target)
        if number is None:
            raise NotFound(f"pod {backend.pod} has no port named {target!r}", "fix the Service targetPort")
        return number

    def connect() -> Any:
        with lock:
            backend = current[0]
        try:
            return _pf_connect(k, backend.namespace, backend.pod, pod_port(backend))
        except LabkitError:
            fresh = ready_backends(k, svc, svc_port)  # the pod may be gone: pick a ready one again
            if not fresh:
                raise
            with lock:
                current[0] = fresh[0]
            return _pf_connect(k, fresh[0].namespace, fresh[0].pod, pod_port(fresh[0]))

    forwarder = Forwarder(connect, port=local_port, name=f"pf-{namespace}-{name}")
    forwarder.start()
    k.add_closer(forwarder.close)
    url = f"{scheme}://127.0.0.1:{forwarder.port}"
    return ServiceEndpoint(
        url, name, namespace, int(svc_port.get("port") or 0), found[0].pod, "port-forward", cmd, forwarder
    )


_OPEN_LOCK = threading.Lock()


def service_url(
    name: str,
    namespace: str = "default",
    port: int | str | None = None,
    *,
    kube: Any = None,
    scheme: str = "http",
    show_kubectl: bool = False,
) -> str:
    """A URL for a Service: direct on embedded, a (reused) port-forward on kind and eks.

    Port-forwards stay open until the :class:`Kube` closes (``Kube.close()`` or process exit).
    """
    k = resolve(kube)
    key = (namespace, name, str(port), scheme)
    with _OPEN_LOCK:
        cached = k.endpoints.get(key)
    if cached is not None and not cached.closed and cached.mode == "port-forward":
        if show_kubectl:
            print(f"$ {cached.kubectl}")
        return cached.url
    endpoint = open_service(name, namespace, port, kube=k, scheme=scheme)
    if show_kubectl:
        print(f"$ {endpoint.kubectl}")
    if endpoint.mode == "port-forward":
        with _OPEN_LOCK:
            k.endpoints[key] = endpoint
    return endpoint.url
