"""Probes for the command-line tools targets depend on (no side effects)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

# (binary, arguments printing the version, how to install it)
TOOLS: dict[str, tuple[list[str], str]] = {
    "docker": (
        ["version", "--format", "{{.Client.Version}}"],
        "install Docker Engine or Docker Desktop: https://docs.docker.com/get-docker/",
    ),
    "kind": (["version"], "install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation"),
    "kubectl": (["version", "--client", "-o", "yaml"], "install kubectl: https://kubernetes.io/docs/tasks/tools/"),
    "helm": (["version", "--short"], "install Helm 3: https://helm.sh/docs/intro/install/"),
    "aws": (["--version"], "optional: install the AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/"),
}

_VERSION = re.compile(r"v?(\d+\.\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Tool:
    """A probed tool: where it is and which version it reports."""

    name: str
    path: str | None
    version: str | None
    install_hint: str

    @property
    def present(self) -> bool:
        return self.path is not None


def probe(name: str, timeout: float = 5.0) -> Tool:
    """Find ``name`` on PATH and ask for its version (never raises)."""
    args, hint = TOOLS[name]
    path = shutil.which(name)
    if path is None:
        return Tool(name, None, None, hint)
    try:
        out = subprocess.run([path, *args], capture_output=True, text=True, timeout=timeout, check=False)
        text = out.stdout + out.stderr
    except (OSError, subprocess.TimeoutExpired):
        text = ""
    found = _VERSION.search(text)
    return Tool(name, path, found.group(1) if found else "unknown", hint)


def docker_daemon(timeout: float = 5.0) -> tuple[bool, str]:
    """Whether a Docker daemon answers, and what it said."""
    path = shutil.which("docker")
    if path is None:
        return False, "docker is not installed"
    try:
        out = subprocess.run(
            [path, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, f"`docker info` did not answer within {timeout:.0f}s"
    except OSError as exc:
        return False, str(exc)
    if out.returncode != 0 or not out.stdout.strip():
        first = (out.stderr.strip().splitlines() or ["no daemon"])[0]
        return False, first
    return True, f"server {out.stdout.strip()}"
