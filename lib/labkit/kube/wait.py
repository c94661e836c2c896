"""Waiting for Kubernetes objects, as ``kubectl wait`` and ``kubectl rollout status`` do, but explaining timeouts.

Waits list the objects, then watch from the list's ``resourceVersion`` (relisting
every ``resync`` seconds, after a 410 Gone or a broken stream), so they react to
changes at once without polling. On timeout they raise
:class:`~labkit.errors.WaitTimeout` whose message says *why*: the scheduler's
reason, image pull or probe failures, crash loops with log lines, Warning events.

On the embedded target the cluster's clock runs faster than wall time: a
``timeout`` is in cluster seconds and is divided by the time scale (never below
a few wall seconds), so a 600 s model-load timeout costs seconds in CI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from labkit import progress as progress_mod
from labkit.errors import ApiError, Invalid, LabkitError, NotFound, ServerError, Unreachable, WaitTimeout
from labkit.kube import diagnose, jsonpath, kubectl, refs, status
from labkit.kube.client import Kube, resolve
from labkit.kube.explain import Explanation

DEFAULT_TIMEOUT_S = 300.0
RESYNC_S = 30.0


@dataclass(frozen=True)
class WaitResult:
    """A finished wait.

    Attributes:
        ref: what was awaited (``deployment/vllm``, ``pods -l app=x``).
        condition: the ``--for`` condition, or ``rollout``.
        namespace: the namespace (``None`` for cluster-scoped or all namespaces).
        names: the objects that met it.
        elapsed_s: wall seconds spent.
        message: the last status line (e.g. ``deployment "vllm" successfully rolled out``).
        kubectl: the equivalent ``kubectl`` command.
    """

    ref: str
    condition: str
    namespace: str | None
    names: tuple[str, ...]
    elapsed_s: float
    message: str
    kubectl: str

    def __str__(self) -> str:
        return f"{self.message} ({self.elapsed_s:.1f}s)"


@dataclass(frozen=True)
class _State:
    done: bool
    message: str
    failed: str = ""  # set when the awaited state cannot come without a change (stop early)


Check = Callable[[dict[str, dict[str, Any]]], _State]


def _key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name')}"


def parse_condition(for_: str) -> tuple[str, str, str]:
    """Split a ``kubectl wait --for`` value into ``(mode, subject, value)``.

    ``condition=Ready`` -> ``("condition", "Ready", "True")``; ``jsonpath={.status.phase}=Running`` ->
    ``("jsonpath", "{.status.phase}", "Running")``; ``delete`` / ``create`` / ``rollout`` -> ``(mode, "", "")``.
    """
    text = for_.strip()
    if text in ("delete", "create", "rollout"):
        return text, "", ""
    mode, sep, rest = text.partition("=")
    if not sep or not rest:
        raise Invalid(
            f"unknown wait condition {for_!r}",
            "use condition=Ready, condition=Available=True, jsonpath={.status.phase}=Running, delete or create",
        )
    if mode == "condition":
        cond, _, value = rest.partition("=")
        return "condition", cond, value or "True"
    if mode == "jsonpath":
        if rest.startswith("{"):
            close = rest.find("}")
            if close == -1:
                raise Invalid(f"unbalanced braces in {for_!r}", "write jsonpath={.status.phase}=Running")
            expr, value = rest[: close + 1], rest[close + 1 :]
            if value and not value.startswith("="):
                raise Invalid(f"cannot read {for_!r}", "write jsonpath={.status.phase}=Running")
            return "jsonpath", expr, value[1:]
        expr, _, value = rest.partition("=")
        return "jsonpath", expr, value
    raise Invalid(f"unknown wait condition {for_!r}", "use condition=..., jsonpath=..., delete or create")


def _check_for(for_: str) -> Check:
    mode, subject, value = parse_condition(for_)
    if mode == "delete":
        return lambda objs: _State(not objs, f"{len(objs)} left" if objs else "deleted")
    if mode == "create":
        return lambda objs: _State(bool(objs), "created" if objs else "not created yet")
    if mode == "rollout":

        def rollout(objs: dict[str, dict[str, Any]]) -> _State:
            if not objs:
                return _State(False, "not created yet")
            states = [status.rollout(o) for o in objs.values()]
            failed = next((s for s in states if s.failed), None)
            if failed is not None:
                return _State(False, failed.message or failed.failed, failed.failed)
            pending = [s for s in states if not s.done]
            return _State(not pending, (pending or states)[0].message)

        return rollout
    if mode == "condition":

        def cond(objs: dict[str, dict[str, Any]]) -> _State:
            if not objs:
                return _State(False, "no matching object yet")
            missing = [o for o in objs.values() if not status.has_condition(o, subject, value)]
            for o in missing:  # a Job that failed will never complete
                if subject.lower() == "complete" and o.get("kind") == "Job" and status.has_condition(o, "Failed"):
                    c = status.condition(o, "Failed") or {}
                    return _State(False, "job failed", f"job failed: {c.get('reason', '')} {c.get('message', '')}")
            if missing:
                return _State(False, f"{len(objs) - len(missing)} of {len(objs)} with {subject}={value}")
            return _State(True, f"condition met: {subject}={value} ({len(objs)} object{'s' if len(objs) > 1 else ''})")

        return cond
    find = jsonpath.compile_path(subject)

    def path(objs: dict[str, dict[str, Any]]) -> _State:
        if not objs:
            return _State(False, "no matching object yet")
        bad = []
        for o in objs.values():
            found = [jsonpath.stringify(v) for v in find(o)]
            if not found or (value and any(f != value for f in found)):
                bad.append(",".join(found) or "<empty>")
        if bad:
            return _State(False, f"{subject} is {bad[0]}" + (f", want {value}" if value else ""))
        return _State(True, f"{subject} = {value or 'set'}")

    return path


class _Waiter:
    """List, then watch, until ``check`` is satisfied or the deadline passes."""

    def __init__(
        self,
        kube: Kube,
        api_version: str,
        kind: str,
        *,
        namespace: str | None,
        name: str | None,
        selector: str | None,
        check: Check,
        wall_timeout: float,
        resync_s: float,
    ) -> None:
        self.kube, self.api_version, self.kind = kube, api_version, kind
        self.namespace, self.name, self.selector = namespace, name, selector
        self.check, self.wall_timeout, self.resync_s = check, wall_timeout, resync_s
        self.objs: dict[str, dict[str, Any]] = {}
        self.state = _State(False, "not checked yet")
        self.timed_out = False
        self.last_error: LabkitError | None = None

    def run(self) -> Iterator[_State]:
        deadline = time.monotonic() + self.wall_timeout
        field = f"metadata.name={self.name}" if self.name else None
        while True:
            try:
                listing = self.kube.list(
                    self.api_version, self.kind, self.namespace, label_selector=self.selector, field_selector=field
                )
            except (ServerError, Unreachable) as exc:
                self.last_error = exc
                if time.monotonic() >= deadline:
                    break
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                continue
            except NotFound as exc:  # e.g. the namespace does not exist (yet, or any more)
                self.last_error = exc
                self.objs = {}
                if (yield from self._evaluate()):
                    return
                if time.monotonic() >= deadline:
                    break
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
                continue
            self.objs = {_key(o): o for o in listing.items}
            if (yield from self._evaluate()):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                for event in self.kube.watch(
                    self.api_version,
                    self.kind,
                    self.namespace,
                    resource_version=listing.resource_version or None,
                    label_selector=self.selector,
                    field_selector=field,
                    timeout_s=max(0.05, min(self.resync_s, remaining)),
                ):
                    obj, kind = event.get("object") or {}, event.get("type")
                    if kind in ("ADDED", "MODIFIED"):
                        self.objs[_key(obj)] = obj
                    elif kind == "DELETED":
                        self.objs.pop(_key(obj), None)
                    else:
                        continue  # BOOKMARK
                    if (yield from self._evaluate()):
                        return
                    if time.monotonic() >= deadline:
                        break
            except ApiError as exc:
                if exc.status not in (410, 429) and not isinstance(exc, ServerError | Unreachable):
                    raise
                self.last_error = exc
            if time.monotonic() >= deadline:
                break
        self.timed_out = True

    def _evaluate(self) -> Iterator[_State]:
        self.state = self.check(self.objs)
        yield self.state
        if self.state.failed:
            self.timed_out = True
            return True
        return self.state.done


def _resolve_target(
    kube: Kube, ref: Any, name: str | None, namespace: str | None, all_namespaces: bool
) -> tuple[str, str, str | None, str | None, str]:
    """(api_version, kind, namespace, name, display ref) of what to wait on."""
    if isinstance(ref, dict):
        meta = ref.get("metadata") or {}
        api_version, kind = str(ref["apiVersion"]), str(ref["kind"])
        name = name or meta.get("name")
        namespace = meta.get("namespace") or namespace
    else:
        resource, name = refs.parse_ref(str(ref), name)
        res = kube.resolve(resource)
        api_version, kind = res.group_version, res.kind
    namespaced = kube.is_namespaced(api_version, kind)
    ns = None if (not namespaced or all_namespaces) else (namespace or "default")
    shown = refs.display_ref(api_version, kind, name) if name else refs.display_name(api_version, kind)
    return api_version, kind, ns, name, shown


def _wait(
    kube: Kube,
    ref: Any,
    name: str | None,
    *,
    for_: str,
    namespace: str | None,
    label_selector: str | None,
    all_namespaces: bool,
    timeout: float,
    show_kubectl: bool,
    progress: bool,
    resync_s: float,
    command: str | None = None,
) -> WaitResult:
    started = time.monotonic()
    try:
        api_version, kind, ns, obj_name, shown = _resolve_target(kube, ref, name, namespace, all_namespaces)
    except NotFound as exc:
        if for_ != "delete" or not exc.what.startswith("the cluster does not know kind"):
            raise
        # its CRD is gone, so no object of that kind can exist any more
        return WaitResult(
            str(ref if not isinstance(ref, dict) else ref.get("kind")),
            for_,
            namespace,
            (),
            time.monotonic() - started,
            "deleted (its kind no longer exists)",
            "",
        )
    if for_ == "rollout" and kind not in ("Deployment", "StatefulSet", "DaemonSet"):
        raise Invalid(f"rollout status needs a Deployment, StatefulSet or DaemonSet, not {kind}", "use wait_for")
    cmd = command or kubectl.wait_cmd(
        shown, for_=for_, namespace=ns, selector=label_selector, timeout=timeout, all_namespaces=all_namespaces
    )
    if for_ == "rollout":
        cmd = kubectl.rollout_status_cmd(shown, namespace=ns, timeout=timeout)
    if show_kubectl:
        print(f"$ {cmd}")
    waiter = _Waiter(
        kube,
        api_version,
        kind,
        namespace=ns,
        name=obj_name,
        selector=label_selector,
        check=_check_for(for_),
        wall_timeout=kube.wall_timeout(timeout),
        resync_s=resync_s,
    )
    label = f"{shown}" + (f" -l {label_selector}" if label_selector else "")
    states = waiter.run()
    if progress:
        states = progress_mod.progress(states, desc=f"waiting for {label} ({for_})")
    for _ in states:
        pass
    elapsed = time.monotonic() - started
    if waiter.timed_out:
        raise _timeout_error(kube, waiter, label, for_=for_, ns=ns, timeout=timeout, elapsed=elapsed)
    return WaitResult(
        ref=label,
        condition=for_,
        namespace=ns,
        names=tuple(sorted((o.get("metadata") or {}).get("name", "") for o in waiter.objs.values())),
        elapsed_s=elapsed,
        message=waiter.state.message,
        kubectl=cmd,
    )


def _timeout_error(
    kube: Kube, waiter: _Waiter, label: str, *, for_: str, ns: str | None, timeout: float, elapsed: float
) -> WaitTimeout:
    mode, subject, value = parse_condition(for_)
    where = f" in namespace {ns}" if ns else ""
    if waiter.state.failed:
        headline = f"{label}{where} failed: {waiter.state.failed}"
    else:
        goal = {
            "rollout": "finish its rollout",
            "delete": "go away",
            "create": "appear",
            "condition": f"reach {subject}={value}",
            "jsonpath": f"reach {subject}" + (f"={value}" if value else ""),
        }[mode]
        scale = ""
        if kube.time_scale != 1.0:
            scale = f" ({elapsed:.1f}s wall at time scale {kube.time_scale:g})"
        headline = f"{label}{where} did not {goal} within {timeout:g}s{scale}: {waiter.state.message}"
    parts = []
    notes: list[str] = []
    if waiter.last_error is not None:
        notes.append(f"the API failed meanwhile: {waiter.last_error.what}")
    pending = [o for o in waiter.objs.values() if mode == "delete" or not waiter.check({_key(o): o}).done]
    if not waiter.objs and mode != "delete":
        selector = f" matching -l {waiter.selector}" if waiter.selector else ""
        notes.append(f"no {waiter.kind}{selector} exists{where}")
        fix = (
            f"check the name and selector (kubectl get {refs.display_name(waiter.api_version, waiter.kind)}"
            f"{' -n ' + ns if ns else ''} --show-labels); was it applied?"
        )
        return WaitTimeout(Explanation(headline, (), tuple(notes)).text(), fix)
    try:
        events = diagnose.namespace_events(kube, ns) if ns else None
        for obj in pending[:3]:
            parts.append(diagnose.explain_object(kube, obj, events=events))
    except LabkitError as exc:  # gathering details must not hide the timeout
        notes.append(f"could not gather details: {exc.what}")
    if len(pending) > 3:
        notes.append(f"... and {len(pending) - 3} more")
    explanation = Explanation(headline, tuple(parts), tuple(notes))
    default_fix = "wait longer (raise timeout=) if it is still progressing, or fix the cause shown above"
    return WaitTimeout(explanation.text(), explanation.fix or default_fix)


def wait_for(
    ref: Any,
    name: str | None = None,
    *,
    for_: str = "condition=Ready",
    namespace: str | None = None,
    label_selector: str | None = None,
    all_namespaces: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,
    kube: Any = None,
    show_kubectl: bool = False,
    progress: bool = True,
    resync_s: float = RESYNC_S,
) -> WaitResult:
    """Wait until objects meet a condition, like ``kubectl wait``.

    Args:
        ref: ``"pod/x"``, ``"pods"`` (with ``label_selector``), ``"nodepool.karpenter.sh/gpu"``, or an object dict.
        name: the object's name, if ``ref`` does not carry it.
        for_: ``condition=Ready`` (``=False`` etc. allowed), ``jsonpath={.status.phase}=Running``,
            ``delete``, ``create`` or ``rollout``.
        namespace: namespace of namespaced objects (default ``default``).
        label_selector: wait for every object matching it (at least one must exist, except for ``delete``).
        all_namespaces: look in every namespace.
        timeout: cluster seconds (scaled on embedded).
        kube: a :class:`Kube` or platform; default: the current lab's.
        show_kubectl: print the equivalent command first.
        progress: show a progress display (nothing when headless).
        resync_s: relist at least this often (wall seconds).

    Raises:
        WaitTimeout: with an explanation of why the condition was not met.
    """
    return _wait(
        resolve(kube),
        ref,
        name,
        for_=for_,
        namespace=namespace,
        label_selector=label_selector,
        all_namespaces=all_namespaces,
        timeout=timeout,
        show_kubectl=show_kubectl,
        progress=progress,
        resync_s=resync_s,
    )


def rollout_status(
    ref: Any,
    name: str | None = None,
    *,
    namespace: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    kube: Any = None,
    show_kubectl: bool = False,
    progress: bool = True,
    resync_s: float = RESYNC_S,
) -> WaitResult:
    """Wait for a Deployment, StatefulSet or DaemonSet rollout, like ``kubectl rollout status``.

    Raises:
        WaitTimeout: when it does not finish in time (or exceeded its progress deadline), explaining why.
    """
    return _wait(
        resolve(kube),
        ref,
        name,
        for_="rollout",
        namespace=namespace,
        label_selector=None,
        all_namespaces=False,
        timeout=timeout,
        show_kubectl=show_kubectl,
        progress=progress,
        resync_s=resync_s,
    )


def wait_deleted(
    ref: Any,
    name: str | None = None,
    *,
    namespace: str | None = None,
    label_selector: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    kube: Any = None,
    show_kubectl: bool = False,
    progress: bool = True,
) -> WaitResult:
    """Wait until objects are gone (``kubectl wait --for=delete``); explains what holds them on timeout."""
    return _wait(
        resolve(kube),
        ref,
        name,
        for_="delete",
        namespace=namespace,
        label_selector=label_selector,
        all_namespaces=False,
        timeout=timeout,
        show_kubectl=show_kubectl,
        progress=progress,
        resync_s=RESYNC_S,
    )
