"""The ``kubectl`` command equivalent to each step of the kit, shown for learning (pure).

Every step function of :mod:`labkit.kube` returns a result carrying ``.kubectl``
(or prints it with ``show_kubectl=True``), built here, so a participant can
repeat the step by hand in a terminal.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

FIELD_MANAGER = "labkit"


def _q(value: str) -> str:
    return shlex.quote(value)


def display_path(path: str | os.PathLike[str], cwd: Path | None = None) -> str:
    """``path`` relative to the working directory when it lies inside it, else as given."""
    p = Path(path)
    base = cwd or Path.cwd()
    try:
        return str(p.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(p)


def duration(seconds: float) -> str:
    """A ``kubectl`` duration flag value: ``300s``."""
    return f"{math.ceil(seconds)}s"


def _ns(namespace: str | None, all_namespaces: bool = False) -> list[str]:
    if all_namespaces:
        return ["-A"]
    return ["-n", _q(namespace)] if namespace else []


def _selector(selector: str | None) -> list[str]:
    return ["-l", _q(selector)] if selector else []


def apply_cmd(
    files: Sequence[str] = (),
    *,
    namespace: str | None = None,
    field_manager: str = FIELD_MANAGER,
    force_conflicts: bool = False,
    dry_run: bool = False,
    recursive: bool = False,
) -> str:
    """``kubectl apply --server-side --field-manager=labkit -f <files>`` (``-f -`` when there are none)."""
    argv = ["kubectl", "apply", "--server-side", f"--field-manager={_q(field_manager)}"]
    if force_conflicts:
        argv.append("--force-conflicts")
    if dry_run:
        argv.append("--dry-run=server")
    argv += _ns(namespace)
    if recursive:
        argv.append("-R")
    for f in files or ["-"]:
        argv += ["-f", _q(f)]
    return " ".join(argv)


def delete_cmd(
    files: Sequence[str] = (),
    *,
    ref: str | None = None,
    namespace: str | None = None,
    selector: str | None = None,
    cascade: str = "background",
    wait: bool = True,
    timeout: float | None = None,
    ignore_not_found: bool = True,
) -> str:
    """``kubectl delete`` of files or of ``ref`` (``deployment/vllm``, ``pods -l app=x``)."""
    argv = ["kubectl", "delete"]
    if ref:
        argv.append(_q(ref))
    else:
        for f in files or ["-"]:
            argv += ["-f", _q(f)]
    argv += _ns(namespace) + _selector(selector)
    if cascade != "background":
        argv.append(f"--cascade={cascade}")
    if ignore_not_found:
        argv.append("--ignore-not-found")
    argv.append(f"--wait={'true' if wait else 'false'}")
    if wait and timeout is not None:
        argv.append(f"--timeout={duration(timeout)}")
    return " ".join(argv)


def wait_cmd(
    ref: str,
    *,
    for_: str,
    namespace: str | None = None,
    selector: str | None = None,
    timeout: float | None = None,
    all_namespaces: bool = False,
) -> str:
    """``kubectl wait --for=condition=Ready pod -l app=x -n ns --timeout=300s``."""
    argv = ["kubectl", "wait", f"--for={_q(for_)}", _q(ref), *_selector(selector), *_ns(namespace, all_namespaces)]
    if timeout is not None:
        argv.append(f"--timeout={duration(timeout)}")
    return " ".join(argv)


def rollout_status_cmd(ref: str, *, namespace: str | None = None, timeout: float | None = None) -> str:
    """``kubectl rollout status deployment/vllm -n serving --timeout=300s``."""
    argv = ["kubectl", "rollout", "status", _q(ref), *_ns(namespace)]
    if timeout is not None:
        argv.append(f"--timeout={duration(timeout)}")
    return " ".join(argv)


def get_cmd(
    resource: str,
    name: str | None = None,
    *,
    namespace: str | None = None,
    selector: str | None = None,
    all_namespaces: bool = False,
    output: str | None = None,
) -> str:
    """``kubectl get pods -n ns -l app=x -o wide``."""
    argv = ["kubectl", "get", _q(resource)]
    if name:
        argv.append(_q(name))
    argv += _ns(namespace, all_namespaces) + _selector(selector)
    if output:
        argv += ["-o", _q(output)]
    return " ".join(argv)


def logs_cmd(
    pod: str,
    *,
    namespace: str | None = None,
    container: str | None = None,
    tail: int | None = None,
    previous: bool = False,
) -> str:
    """``kubectl logs vllm-0 -n serving -c server --tail=50``."""
    argv = ["kubectl", "logs", _q(pod), *_ns(namespace)]
    if container:
        argv += ["-c", _q(container)]
    if tail is not None:
        argv.append(f"--tail={tail}")
    if previous:
        argv.append("--previous")
    return " ".join(argv)


def describe_cmd(ref: str, *, namespace: str | None = None) -> str:
    """``kubectl describe pod/vllm-0 -n serving``."""
    return " ".join(["kubectl", "describe", _q(ref), *_ns(namespace)])


def events_cmd(*, namespace: str | None = None, for_ref: str | None = None, warnings_only: bool = False) -> str:
    """``kubectl events -n serving --for pod/vllm-0 --types=Warning``."""
    argv = ["kubectl", "events", *_ns(namespace)]
    if for_ref:
        argv += ["--for", _q(for_ref)]
    if warnings_only:
        argv.append("--types=Warning")
    return " ".join(argv)


def port_forward_cmd(target: str, *, namespace: str | None = None, local_port: int = 0, remote_port: int) -> str:
    """``kubectl port-forward svc/vllm -n serving 8000:80``."""
    mapping = f"{local_port}:{remote_port}" if local_port else f":{remote_port}"
    return " ".join(["kubectl", "port-forward", _q(target), *_ns(namespace), mapping])
