"""The ``embedded`` target: the in-repo platform on 127.0.0.1 (the default, used by CI).

``labkit up`` starts the platform in a background process that writes a state file
(``<home>/embedded/<cluster>/state.json``); ``labkit env`` prints its exports and
``labkit down`` stops it. A notebook that finds no running platform starts one in
its own kernel. ``labkit run`` starts one for the whole run and passes its state
file to every kernel through ``LABKIT_EMBEDDED_STATE``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.errors import PlatformNotRunning, TargetUnavailable
from labkit.settings import Settings
from labkit.targets.base import Finding, Platform, Target, TargetStatus

STATE_ENV = "LABKIT_EMBEDDED_STATE"
START_TIMEOUT_S = 30.0


def state_dir(settings: Settings) -> Path:
    """Where the platform of these settings keeps its kubeconfig and state file."""
    return settings.home / "embedded" / settings.cluster_name


def state_file(settings: Settings) -> Path:
    return state_dir(settings) / "state.json"


@dataclass
class EmbeddedHandle(Platform):
    """A connection to a running embedded platform."""

    state: dict[str, Any] = field(default_factory=dict)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(path: Path) -> dict[str, Any] | None:
    """The state of a running platform, or ``None`` if absent or its process is gone."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = state.get("pid")
    if not isinstance(pid, int) or not _pid_alive(pid):
        return None
    return state


def _handle(settings: Settings, state: dict[str, Any]) -> EmbeddedHandle:
    from labkit.targets.eks import kubeconfig_path

    # As on EKS: the cluster's kubeconfig is the one the Week 1 lab writes after creating it.
    return EmbeddedHandle(
        target="embedded",
        settings=settings,
        kubeconfig=kubeconfig_path(settings),
        aws_env=dict(state.get("env", {})),
        state=state,
    )


def _write_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def start_in_process(settings: Settings, path: Path | None = None) -> tuple[Any, EmbeddedHandle]:
    """Start the platform in this process; returns the running services and a handle.

    The state file is written so other processes (kernels, ``kubectl``) can join.
    """
    from labkit.embedded.services import EmbeddedPlatform

    path = path or state_file(settings)
    services = EmbeddedPlatform(
        state_dir=path.parent,
        region=settings.region,
        time_scale=settings.time_scale,
        cluster_profile=settings.cluster_profile,
    )
    info = services.start()
    state = {
        "pid": os.getpid(),
        "started_at": time.time(),
        "cluster_name": settings.cluster_name,
        "time_scale": settings.time_scale,
        "cluster_profile": settings.cluster_profile,
        **info,
    }
    _write_state(path, state)
    return services, _handle(settings, state)


def serve(settings: Settings) -> None:
    """Run the platform until SIGTERM/SIGINT (the body of ``labkit up``'s background process)."""
    services, _ = start_in_process(settings)
    stopping = False

    def _stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not stopping:
            time.sleep(0.2)
    finally:
        services.stop()
        with contextlib.suppress(FileNotFoundError):
            state_file(settings).unlink()


class EmbeddedTarget(Target):
    name = "embedded"
    description = "in-repo Kubernetes API server, embedded AWS and model simulators on 127.0.0.1"

    def diagnose(self, settings: Settings) -> TargetStatus:
        findings = []
        for module, why in (
            ("kubernetes", "Kubernetes client"),
            ("boto3", "AWS SDK"),
            ("moto", "embedded AWS"),
            ("aiohttp", "embedded servers"),
        ):
            try:
                __import__(module)
                findings.append(Finding(module, True, f"{why} importable"))
            except ImportError as exc:
                findings.append(
                    Finding(
                        module,
                        False,
                        f"{why} missing: {exc}",
                        "reinstall the kit: `make clean && make test` or `pip install -e .`",
                    )
                )
        return TargetStatus(self.name, self.description, tuple(findings))

    def up(self, settings: Settings) -> Platform:
        path = state_file(settings)
        state = read_state(path)
        if state is not None:
            return _handle(settings, state)
        log = path.parent / "platform.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **{f"LABKIT_{k.upper()}": str(v) for k, v in _settings_env(settings).items()}}
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "labkit.targets.embedded"],
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            state = read_state(path)
            if state is not None and state.get("pid") == proc.pid:
                return _handle(settings, state)
            if proc.poll() is not None:
                raise TargetUnavailable(
                    f"the embedded platform exited while starting (code {proc.returncode})",
                    f"read {log} for the reason",
                )
            time.sleep(0.05)
        proc.terminate()
        raise TargetUnavailable(
            f"the embedded platform did not start within {START_TIMEOUT_S:.0f}s",
            f"read {log}; the machine may be overloaded",
        )

    def connect(self, settings: Settings) -> Platform:
        explicit = os.environ.get(STATE_ENV)
        path = Path(explicit) if explicit else state_file(settings)
        state = read_state(path)
        if state is None:
            if explicit:
                raise PlatformNotRunning(
                    f"{STATE_ENV} names {path}, but no platform is running there",
                    f"unset {STATE_ENV} or start the platform with `labkit up`",
                )
            raise PlatformNotRunning(
                "no embedded platform is running", "run `labkit up` (or let the notebook start one)"
            )
        return _handle(settings, state)

    def down(self, settings: Settings) -> list[str]:
        path = state_file(settings)
        state = read_state(path)
        if state is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return []
        pid = int(state["pid"])
        if pid == os.getpid():
            raise TargetUnavailable("this process runs the platform itself", "stop it with the services' stop()")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _pid_alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return [f"embedded platform (pid {pid})"]


def connect_or_start(settings: Settings) -> Platform:
    """Connect to a running platform, or start one in this process until it exits."""
    try:
        return EmbeddedTarget().connect(settings)
    except PlatformNotRunning:
        if os.environ.get(STATE_ENV):
            raise
    services, handle = start_in_process(settings)
    atexit.register(services.stop)
    print(
        "Started an embedded platform in this process; it stops when the process (kernel) exits. "
        "Run `labkit up` to share one across notebooks."
    )
    return handle


def simulate(engine: str, argv: list[str]) -> int:
    """Run a model-server simulator in the foreground (``labkit simulate vllm ...``)."""
    if engine != "vllm":
        raise TargetUnavailable(f"no simulator for '{engine}'", "simulators available: vllm")
    from labkit.embedded.simulators.vllm.__main__ import main

    return main(argv)


def _settings_env(settings: Settings) -> dict[str, Any]:
    return {
        "target": "embedded",
        "region": settings.region,
        "cluster_name": settings.cluster_name,
        "cluster_profile": settings.cluster_profile,
        "owner": settings.owner,
        "time_scale": settings.time_scale,
        "home": settings.home,
    }


if __name__ == "__main__":  # the background process of `labkit up`
    from labkit import settings as _settings

    serve(_settings.load({"target": "embedded"}))
