"""A local TCP listener that pipes each connection through a tunnel (a Kubernetes port-forward).

``Forwarder`` listens on ``127.0.0.1`` (an ephemeral port by default) in a daemon
thread. For every accepted connection it opens a fresh tunnel with ``connect()``
(for a pod: the official client's ``kubernetes.stream.portforward``) and copies
bytes both ways until either side closes. ``close()`` stops the listener and
every open connection.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("labkit.kube.portforward")

BUFFER = 65536


class Forwarder:
    """Forward ``127.0.0.1:<port>`` to whatever ``connect()`` returns (a socket-like object per connection).

    Args:
        connect: opens one tunnel; returns an object with ``recv``, ``sendall``, ``fileno`` and ``close``.
        host: local address to listen on.
        port: local port (0 picks a free one).
        name: shown in thread names and logs.
    """

    def __init__(self, connect: Callable[[], Any], *, host: str = "127.0.0.1", port: int = 0, name: str = "") -> None:
        self._connect = connect
        self._host, self._requested_port = host, port
        self.name = name or "port-forward"
        self._listener: socket.socket | None = None
        self._port = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._open: set[Any] = set()
        self._lock = threading.Lock()
        self.connections = 0
        self.errors: list[str] = []

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the forwarder is not started")
        return self._port

    @property
    def address(self) -> str:
        return f"{self._host}:{self.port}"

    def start(self) -> int:
        """Start listening; returns the local port."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self._host, self._requested_port))
        listener.listen(16)
        listener.settimeout(0.2)
        self._listener = listener
        self._port = int(listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept_loop, name=f"labkit-{self.name}", daemon=True)
        self._thread.start()
        return self.port

    def close(self) -> None:
        """Stop listening and close every forwarded connection (idempotent)."""
        self._stop.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() at once on Linux
            with contextlib.suppress(OSError):
                self._listener.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        with self._lock:
            open_now, self._open = list(self._open), set()
        for s in open_now:
            with contextlib.suppress(Exception):
                s.close()

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def __enter__(self) -> Forwarder:
        if self._listener is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), name=f"labkit-{self.name}-conn", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            remote = self._connect()
        except Exception as exc:  # the tunnel could not open: drop this connection, keep listening
            self.errors.append(str(exc))
            log.warning("%s: cannot open the tunnel: %s", self.name, exc)
            with contextlib.suppress(OSError):
                client.close()
            return
        with self._lock:
            if self._stop.is_set():
                for s in (client, remote):
                    with contextlib.suppress(Exception):
                        s.close()
                return
            self._open.update((client, remote))
        try:
            self._pipe(client, remote)
        finally:
            with self._lock:
                self._open.discard(client)
                self._open.discard(remote)
            for s in (client, remote):
                with contextlib.suppress(Exception):
                    s.close()

    def _pipe(self, client: socket.socket, remote: Any) -> None:
        pair = {client: remote, remote: client}
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(list(pair), [], [], 0.5)
            except (OSError, ValueError):
                return
            for src in ready:
                try:
                    data = src.recv(BUFFER)
                except OSError:
                    return
                if not data:
                    return
                try:
                    pair[src].sendall(data)
                except OSError:
                    return
