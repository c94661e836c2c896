"""Container runtimes of the simulated kubelet: what "running a container" means in the embedded cluster.

For each container the kubelet asks the first registered :class:`ContainerRuntime` whose
``matches(image)`` is true (model-server simulators register theirs) and falls back to
:data:`DEFAULT_RUNTIME`. The default runtime interprets the cheap, common cases of
``command``/``args`` on simulated time: ``sleep``, ``echo``/``printf``, ``date``, ``exit``,
``true``/``false``, ``sh -c "a; b && c"``, ``while true; do ...; done`` loops and the classic
``perl -Mbignum=bpi -wle 'print bpi(2000)'`` Job; shell images without a command exit at once
(so a bare ``busybox`` Deployment crash-loops as it does on a real cluster); anything else serves
forever, or, in a pod that does not restart (a Job's), works for :data:`DEFAULT_JOB_SECONDS` and
exits 0.

A process may also offer two optional methods the kubelet uses when present:
``exit_code() -> int | None`` (``None`` while running) and ``next_change() -> float | None``
(simulated epoch seconds of its next log line or exit, so the kubelet need not poll it).
"""

from __future__ import annotations

import re
import shlex
import threading
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

#: How long an unknown command runs in a pod that does not restart (simulated seconds).
DEFAULT_JOB_SECONDS = 10.0
#: Images whose default command is a shell or an interpreter that exits at once without a terminal.
SHELL_IMAGES = ("busybox", "alpine", "ubuntu", "debian", "centos", "fedora", "amazonlinux", "python", "bash", "node")
# A loop runs at most this many statements before the process is considered busy forever.
_MAX_STEPS = 100_000


@runtime_checkable
class ContainerProcess(Protocol):
    """A running container, as the kubelet sees it."""

    def start(self) -> int | None:
        """Start serving; returns the 127.0.0.1 TCP port, or ``None`` if it serves nothing."""

    def ready(self) -> bool:
        """What the container's probes would see now."""

    def stop(self) -> None:
        """Stop (SIGTERM then SIGKILL on a real node)."""

    def log_lines(self) -> list[str]:
        """New lines printed since the last call."""


@runtime_checkable
class ContainerRuntime(Protocol):
    """Makes container processes for the images it knows."""

    def matches(self, image: str) -> bool:
        """Whether this runtime runs ``image``."""

    def create(self, pod: dict[str, Any], container: dict[str, Any], node: dict[str, Any] | None, clock: Any) -> Any:
        """A new (not yet started) :class:`ContainerProcess` for ``container`` of ``pod`` on ``node``."""


_registry: list[Any] = []
_registry_lock = threading.Lock()


def register_runtime(rt: Any) -> None:
    """Add a runtime; earlier registrations win for images several runtimes match. Idempotent."""
    with _registry_lock:
        if not any(r is rt for r in _registry):
            _registry.append(rt)


def unregister_runtime(rt: Any) -> None:
    """Remove a runtime registered with :func:`register_runtime` (tests, restarts)."""
    with _registry_lock:
        _registry[:] = [r for r in _registry if r is not rt]


def registered_runtimes() -> list[Any]:
    """The registered runtimes, first match first."""
    with _registry_lock:
        return list(_registry)


def runtime_for(image: str) -> Any:
    """The runtime that runs ``image``: the first registered match, else :data:`DEFAULT_RUNTIME`."""
    for rt in registered_runtimes():
        try:
            if rt.matches(image):
                return rt
        except Exception:  # a broken runtime must not break every pod
            continue
    return DEFAULT_RUNTIME


# --------------------------------------------------------------------------- the default runtime


def image_repository(image: str) -> str:
    """The repository part of an image reference without registry, tag or digest (``library/`` dropped)."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)
    if ":" in last[-1]:
        ref = ref.rsplit(":", 1)[0]
    parts = ref.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    if parts and parts[0] == "library":
        parts = parts[1:]
    return "/".join(parts)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")


def _sleep_seconds(arg: str) -> float | None:
    if arg in ("infinity", "inf"):
        return None
    m = _DURATION.match(arg)
    if not m:
        return 0.0
    value = float(m.group(1))
    return value * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _pi_digits(n: int) -> str:
    """The first ``n`` decimal digits of pi after "3." (Machin's formula on integers)."""

    def arctan_inv(x: int, scale: int) -> int:
        total = term = scale // x
        x2, k, sign = x * x, 1, -1
        while term:
            term //= x2
            total += sign * (term // (2 * k + 1))
            sign, k = -sign, k + 1
        return total

    scale = 10 ** (n + 10)
    pi = 4 * (4 * arctan_inv(5, scale) - arctan_inv(239, scale))
    text = str(pi)
    return text[0] + "." + text[1 : n + 1]


Step = tuple[float, str, Any]  # (simulated seconds since start, "log" | "exit", payload)


class ScriptedProcess:
    """A container whose life is a timed script of log lines and an optional exit (simulated time).

    Args:
        steps: an iterator of ``(seconds after start, "log" | "exit", line or exit code)``, in time order.
        clock: the simulated clock.
    """

    def __init__(self, steps: Iterator[Step], clock: Any) -> None:
        self._steps = steps
        self._clock = clock
        self._pending: Step | None = None
        self._started_at: float | None = None
        self._stopped = False
        self._exit: int | None = None
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def start(self) -> int | None:
        self._started_at = self._clock.now()
        return None

    def ready(self) -> bool:
        self._advance()
        return self._started_at is not None and not self._stopped and self._exit is None

    def stop(self) -> None:
        self._stopped = True

    def log_lines(self) -> list[str]:
        self._advance()
        with self._lock:
            out, self._lines = self._lines, []
        return out

    def exit_code(self) -> int | None:
        self._advance()
        return self._exit

    def next_change(self) -> float | None:
        """Simulated epoch seconds of the next line or the exit; ``None`` when nothing more happens."""
        self._advance()
        with self._lock:
            if self._started_at is None or self._stopped or self._exit is not None:
                return None
            step = self._peek()
            return None if step is None else self._started_at + step[0]

    def _peek(self) -> Step | None:
        if self._pending is None:
            self._pending = next(self._steps, None)
        return self._pending

    def _advance(self) -> None:
        with self._lock:
            if self._started_at is None or self._stopped or self._exit is not None:
                return
            elapsed = self._clock.now() - self._started_at
            while True:
                step = self._peek()
                if step is None or step[0] > elapsed:
                    return
                self._pending = None
                if step[1] == "log":
                    self._lines.append(str(step[2]))
                else:
                    self._exit = int(step[2])
                    return


def _expand(word: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m.group(1), ""), word)


def _word_at(script: str, i: int, word: str) -> bool:
    end = i + len(word)
    return (
        script.startswith(word, i)
        and (i == 0 or not (script[i - 1].isalnum() or script[i - 1] == "_"))
        and (end >= len(script) or not (script[end].isalnum() or script[end] == "_"))
    )


def _statements(script: str) -> list[str]:
    """Split a shell script on ``;``, ``&&`` and newlines (quotes respected, loops kept whole)."""
    out: list[str] = []
    buf: list[str] = []
    quote, depth, i = "", 0, 0
    while i < len(script):
        ch = script[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif any(_word_at(script, i, w) for w in ("while", "until", "for")):
            depth += 1
        elif _word_at(script, i, "done"):
            depth -= 1
        elif depth == 0 and (ch in ";\n" or script.startswith("&&", i)):
            out.append("".join(buf).strip())
            buf = []
            i += 2 if ch == "&" else 1
            continue
        buf.append(ch)
        i += 1
    out.append("".join(buf).strip())
    return [s for s in out if s]


_LOOP = re.compile(r"^while\s+(?:true|:|\[\s*1\s*\])\s*;?\s*do\s+(.*?)\s*;?\s*done$", re.S)


def _run_script(script: str, env: dict[str, str], clock: Any) -> Iterator[Step]:
    """The steps of a shell script; it exits 0 after its last statement unless it blocks forever."""
    state: dict[str, float | None] = {"t": 0.0}
    yield from _run_block(_statements(script), env, clock, state)
    if state["t"] is not None:
        yield state["t"], "exit", 0


def _run_block(
    statements: list[str], env: dict[str, str], clock: Any, state: dict[str, float | None]
) -> Iterator[Step]:
    for statement in statements:
        loop = _LOOP.match(statement)
        if loop:
            body = _statements(loop.group(1))
            for _ in range(_MAX_STEPS):
                before = state["t"]
                yield from _run_block(body, env, clock, state)
                now = state["t"]
                if now is None:
                    return
                if before is not None and now <= before:  # a loop that never sleeps: one round per second
                    state["t"] = now + 1.0
            state["t"] = None
            return
        yield from _run_command(statement, env, clock, state)
        if state["t"] is None:
            return


def _run_command(statement: str, env: dict[str, str], clock: Any, state: dict[str, float | None]) -> Iterator[Step]:
    """Steps of one simple command; ``state["t"]`` moves on by the time it takes (``None``: forever)."""
    t = state["t"] or 0.0
    try:
        words = [_expand(w, env) for w in shlex.split(statement)]
    except ValueError:
        words = statement.split()
    if not words:
        return
    cmd = words[0].rsplit("/", 1)[-1]
    if cmd == "sleep":
        seconds = _sleep_seconds(words[1] if len(words) > 1 else "0")
        state["t"] = None if seconds is None else t + seconds
    elif cmd == "echo":
        yield t, "log", " ".join(w for w in words[1:] if w not in ("-n", "-e"))
    elif cmd == "printf":
        fmt = words[1] if len(words) > 1 else ""
        yield t, "log", fmt.replace("\\n", "").replace("%s", " ".join(words[2:]))
    elif cmd == "date":
        import datetime as dt

        yield t, "log", dt.datetime.fromtimestamp(clock.now() + t, dt.UTC).strftime("%a %b %d %H:%M:%S UTC %Y")
    elif cmd == "exit":
        code = int(words[1]) if len(words) > 1 and words[1].lstrip("-").isdigit() else 0
        yield t, "exit", code
        state["t"] = None
    elif cmd == "false":
        yield t, "exit", 1
        state["t"] = None
    elif cmd in ("true", ":"):
        return
    elif cmd == "perl" and any("bpi(" in w for w in words):
        m = re.search(r"bpi\((\d+)\)", " ".join(words))
        n = min(int(m.group(1)) if m else 2000, 20000)
        state["t"] = t + 2.0 + n / 1000.0
        yield state["t"], "log", _pi_digits(n)
    else:
        state["t"] = t + 0.1


class DefaultRuntime:
    """Runs any image by interpreting its command on simulated time (see the module docstring)."""

    def matches(self, image: str) -> bool:
        return True

    def create(
        self, pod: dict[str, Any], container: dict[str, Any], node: dict[str, Any] | None, clock: Any
    ) -> ScriptedProcess:
        return ScriptedProcess(self.script(pod, container, clock), clock)

    def script(self, pod: dict[str, Any], container: dict[str, Any], clock: Any) -> Iterator[Step]:
        """The timed steps of this container's life."""
        argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
        env = {e["name"]: str(e.get("value", "")) for e in container.get("env") or [] if "name" in e}
        env.setdefault("HOSTNAME", str((pod.get("metadata") or {}).get("name", "")))
        repo = image_repository(str(container.get("image", "")))
        restarts = (pod.get("spec") or {}).get("restartPolicy", "Always") == "Always" or (
            container.get("restartPolicy") == "Always"
        )
        if not argv:
            if repo in SHELL_IMAGES:
                return iter([(0.0, "exit", 0)])
            return _forever(_startup_lines(repo), restarts)
        shell = argv[0].rsplit("/", 1)[-1] in ("sh", "bash", "ash", "dash", "zsh")
        if shell and len(argv) >= 3 and argv[1] in ("-c", "-ec", "-xc", "-ce"):
            return _run_script(argv[2], env, clock)
        first = argv[0].rsplit("/", 1)[-1]
        if first in ("sleep", "echo", "printf", "date", "exit", "true", "false", "perl"):
            return _run_script(shlex.join(argv), env, clock)
        return _forever(_startup_lines(repo), restarts)


def _forever(lines: list[str], restarts: bool) -> Iterator[Step]:
    for i, line in enumerate(lines):
        yield 0.1 * i, "log", line
    if not restarts:
        yield DEFAULT_JOB_SECONDS, "exit", 0


def _startup_lines(repo: str) -> list[str]:
    if repo == "nginx" or repo.endswith("/nginx") or repo.startswith("nginxinc/"):
        return [
            "/docker-entrypoint.sh: /docker-entrypoint.d/ is not empty, will attempt to perform configuration",
            "/docker-entrypoint.sh: Looking for shell scripts in /docker-entrypoint.d/",
            "/docker-entrypoint.sh: Configuration complete; ready for start up",
            'nginx: [notice] using the "epoll" event method',
            "nginx: [notice] start worker processes",
        ]
    if repo == "redis":
        return ["oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo", "* Ready to accept connections tcp"]
    if repo == "postgres":
        return ["LOG:  database system is ready to accept connections"]
    return []


#: The runtime used for images no registered runtime matches.
DEFAULT_RUNTIME = DefaultRuntime()
