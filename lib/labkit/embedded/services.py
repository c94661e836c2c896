"""Start and stop every embedded service as one platform.

The platform runs in threads of the current process: inside ``labkit up``'s
background process, inside ``labkit run`` (shared by every notebook of the run),
or inside a notebook kernel that found nothing running.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Dummy credentials for the embedded AWS; not secrets, only there so botocore signs requests.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass
class EmbeddedPlatform:
    """The embedded services, started together.

    Args:
        state_dir: folder for the kubeconfig and other files clients read.
        region: the AWS region the embedded account answers in.
        time_scale: how much faster than wall time the simulated clock runs.
        cluster_profile: ``auto`` or ``standard``; decides the simulated nodes.
    """

    state_dir: Path
    region: str = "us-west-2"
    time_scale: float = 60.0
    cluster_profile: str = "auto"
    _moto: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self) -> dict[str, Any]:
        """Start every service; returns the endpoints and environment clients need."""
        with self._lock:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            aws_url = self._start_aws()
            env = {
                "AWS_ENDPOINT_URL": aws_url,
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                **DUMMY_CREDENTIALS,
            }
            return {"aws_endpoint": aws_url, "kubeconfig": None, "env": env}

    def stop(self) -> None:
        """Stop every service (idempotent)."""
        with self._lock:
            if self._moto is not None:
                self._moto.stop()
                self._moto = None

    def _start_aws(self) -> str:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        with contextlib.redirect_stdout(io.StringIO()):  # moto announces its thread on stdout
            server.start()
        self._moto = server
        host, port = server.get_host_and_port()
        return f"http://{host}:{port}"
