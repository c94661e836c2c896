"""The ``kind`` target: a real Kubernetes cluster in Docker on the participant's machine.

The commands are built by pure functions (tested without Docker) and run through
``sh``. The cluster config lives in ``infra/kind/``; it disables the default CNI so
the Week 2 lab can install Cilium.
"""

from __future__ import annotations

from pathlib import Path

from labkit.errors import PlatformNotRunning, TargetUnavailable
from labkit.settings import Settings
from labkit.targets import tools
from labkit.targets.base import Finding, Platform, Target, TargetStatus

REPO_ROOT = Path(__file__).resolve().parents[3]
KIND_CONFIG = REPO_ROOT / "infra" / "kind" / "cluster.yaml"


def kubeconfig_path(settings: Settings) -> Path:
    return settings.home / "kind" / settings.cluster_name / "kubeconfig"


def create_command(settings: Settings, config: Path = KIND_CONFIG) -> list[str]:
    """The ``kind create cluster`` command ``labkit up --target kind`` runs.

    No ``--wait``: with the default CNI disabled, nodes stay NotReady until the Week 2
    lab installs Cilium; ``kind create`` itself returns once the API server answers.
    The node image is kind's own default, which matches the installed kind version.
    """
    return [
        "kind",
        "create",
        "cluster",
        "--name",
        settings.cluster_name,
        "--config",
        str(config),
        "--kubeconfig",
        str(kubeconfig_path(settings)),
    ]


def delete_command(settings: Settings) -> list[str]:
    """The ``kind delete cluster`` command ``labkit down --target kind`` runs."""
    return [
        "kind",
        "delete",
        "cluster",
        "--name",
        settings.cluster_name,
        "--kubeconfig",
        str(kubeconfig_path(settings)),
    ]


def list_command() -> list[str]:
    return ["kind", "get", "clusters"]


def _run(argv: list[str]) -> str:
    import sh

    try:
        return str(sh.Command(argv[0])(*argv[1:], _err_to_out=True))
    except sh.CommandNotFound as exc:
        raise TargetUnavailable(f"`{argv[0]}` is not installed", tools.TOOLS["kind"][1]) from exc
    except sh.ErrorReturnCode as exc:
        output = exc.stdout.decode(errors="replace")[-2000:]
        raise TargetUnavailable(
            f"`{' '.join(argv[:3])}` failed (exit {exc.exit_code}):\n{output}",
            "run `labkit doctor`; is the Docker daemon running?",
        ) from exc


def wait_for_api(platform: Platform, timeout_s: float = 120.0) -> None:
    """Wait until the cluster's API server answers ``/readyz`` (nodes may stay NotReady without a CNI)."""
    import time

    from kubernetes.client import ApiClient

    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            api: ApiClient = platform.kube_client()
            api.call_api("/readyz", "GET", auth_settings=["BearerToken"], _preload_content=False, _request_timeout=5)
            return
        except Exception as exc:  # any failure means "not yet"; the last one is reported
            last = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            time.sleep(2)
    raise TargetUnavailable(
        f"the kind API server did not become ready within {timeout_s:.0f}s ({last})",
        "check `docker ps` and `kind export logs`",
    )


class KindTarget(Target):
    name = "kind"
    description = "a local kind cluster in Docker (Cilium-capable)"

    def diagnose(self, settings: Settings) -> TargetStatus:
        docker = tools.probe("docker")
        kind = tools.probe("kind")
        kubectl = tools.probe("kubectl")
        helm = tools.probe("helm")
        findings = [
            Finding(
                "docker",
                docker.present,
                f"docker {docker.version} at {docker.path}" if docker.present else "docker CLI not found",
                docker.install_hint,
            ),
        ]
        if docker.present:
            up, detail = tools.docker_daemon()
            findings.append(
                Finding("docker daemon", up, detail, "start Docker (Docker Desktop, or `sudo systemctl start docker`)")
            )
        findings += [
            Finding(
                "kind", kind.present, f"kind {kind.version}" if kind.present else "kind not found", kind.install_hint
            ),
            Finding(
                "kubectl",
                kubectl.present,
                f"kubectl {kubectl.version}" if kubectl.present else "kubectl not found",
                kubectl.install_hint,
                required=False,
            ),
            Finding(
                "helm",
                helm.present,
                f"helm {helm.version}" if helm.present else "helm not found",
                helm.install_hint,
                required=False,
            ),
        ]
        return TargetStatus(self.name, self.description, tuple(findings))

    def up(self, settings: Settings) -> Platform:
        status = self.diagnose(settings)
        if not status.usable:
            first = status.blockers[0]
            raise TargetUnavailable(f"the kind target cannot run here: {first.detail}", first.fix)
        if settings.cluster_name not in _run(list_command()).split():
            kubeconfig_path(settings).parent.mkdir(parents=True, exist_ok=True)
            _run(create_command(settings))
        platform = self.connect(settings)
        wait_for_api(platform)
        return platform

    def connect(self, settings: Settings) -> Platform:
        path = kubeconfig_path(settings)
        if not path.exists():
            raise PlatformNotRunning(
                f"no kind cluster '{settings.cluster_name}' was created by labkit", "run `labkit up --target kind`"
            )
        return Platform(target=self.name, settings=settings, kubeconfig=path)

    def down(self, settings: Settings) -> list[str]:
        if settings.cluster_name not in _run(list_command()).split():
            return []
        _run(delete_command(settings))
        return [f"kind cluster {settings.cluster_name}"]
