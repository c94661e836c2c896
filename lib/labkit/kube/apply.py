"""Applying and deleting manifests: server-side apply (field manager ``labkit``), idempotent.

``apply`` reports each object as ``created``, ``configured`` or ``unchanged``, as
``kubectl apply`` does, so a second run of a lab cell shows nothing changed.
CRDs in a batch are applied first and awaited (``Established``) before the
custom resources that need them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from labkit.errors import LabkitError, NotFound
from labkit.kube import kubectl, manifests, refs
from labkit.kube.apierrors import with_context
from labkit.kube.client import FIELD_MANAGER, Kube, resolve
from labkit.kube.manifests import Manifest
from labkit.kube.wait import wait_deleted, wait_for

CRD_TIMEOUT_S = 60.0
DELETE_TIMEOUT_S = 120.0


def kubectl_ref(api_version: str, kind: str, name: str) -> str:
    """How ``kubectl apply`` names an object in its output: ``deployment.apps/vllm``, ``namespace/serving``."""
    group = refs.group_of(api_version)
    return f"{kind.lower()}{'.' + group if group else ''}/{name}"


@dataclass(frozen=True)
class Applied:
    """One object of an apply or delete.

    Attributes:
        ref: ``deployment.apps/vllm`` (as ``kubectl`` prints it).
        namespace: its namespace (``None`` when cluster-scoped).
        action: ``created``, ``configured``, ``unchanged``, ``skipped``, ``deleted`` or ``not found``.
        source: where the manifest came from (``file#n``).
        obj: what the API server answered (the applied object), when there was an answer.
    """

    ref: str
    namespace: str | None
    action: str
    source: str = ""
    obj: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __str__(self) -> str:
        where = f" -n {self.namespace}" if self.namespace else ""
        return f"{self.ref}{where} {self.action}"


@dataclass(frozen=True)
class ApplyResult:
    """What an apply or delete did, object by object, plus the equivalent ``kubectl`` command."""

    items: tuple[Applied, ...]
    kubectl: str
    dry_run: bool = False

    def _with(self, action: str) -> list[str]:
        return [i.ref for i in self.items if i.action == action]

    @property
    def created(self) -> list[str]:
        return self._with("created")

    @property
    def configured(self) -> list[str]:
        return self._with("configured")

    @property
    def unchanged(self) -> list[str]:
        return self._with("unchanged")

    @property
    def deleted(self) -> list[str]:
        return self._with("deleted")

    @property
    def changed(self) -> bool:
        """Whether anything was created, configured or deleted."""
        return any(i.action in ("created", "configured", "deleted") for i in self.items)

    def objects(self) -> list[dict[str, Any]]:
        """The objects as the API server returned them."""
        return [i.obj for i in self.items if i.obj]

    def __str__(self) -> str:
        suffix = " (server dry run)" if self.dry_run else ""
        return "\n".join(f"{item}{suffix}" for item in self.items) or "nothing to do"

    def __len__(self) -> int:
        return len(self.items)


def _files(source: Any) -> list[str]:
    """The ``-f`` arguments for the kubectl equivalent (empty: the objects came from Python)."""
    if isinstance(source, os.PathLike) or (isinstance(source, str) and manifests.looks_like_path(source)):
        return [kubectl.display_path(str(source).strip())]
    if (
        isinstance(source, list | tuple)
        and source
        and all(isinstance(s, os.PathLike) or (isinstance(s, str) and manifests.looks_like_path(s)) for s in source)
    ):
        return [kubectl.display_path(str(s).strip()) for s in source]
    return []


def _crd_kinds(m: Manifest) -> tuple[str, str]:
    spec = m.obj.get("spec") or {}
    return str(spec.get("group") or ""), str((spec.get("names") or {}).get("kind") or "")


def _namespace_for(kube: Kube, m: Manifest, namespace: str | None) -> str | None:
    if not kube.is_namespaced(m.api_version, m.kind):
        return None
    return m.namespace or namespace or "default"


def _wait_established(kube: Kube, crds: list[str], timeout: float) -> None:
    """Wait until each named CRD is ``Established`` (its custom resources can be served)."""
    for crd in crds:
        wait_for(
            "customresourcedefinitions", crd, for_="condition=Established", timeout=timeout, kube=kube, progress=False
        )


def apply(
    source: Any,
    *,
    namespace: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    field_manager: str = FIELD_MANAGER,
    recursive: bool = False,
    wait_crds: bool = True,
    crd_timeout: float = CRD_TIMEOUT_S,
    kube: Any = None,
    show_kubectl: bool = False,
) -> ApplyResult:
    """Server-side apply a manifest, a folder, YAML text, a dict or a list of those.

    Args:
        source: what to apply (see :func:`labkit.kube.manifests.load`).
        namespace: namespace for namespaced objects that name none (default ``default``).
        force: take over fields another manager owns (``--force-conflicts``).
        dry_run: let the server validate without persisting (``--dry-run=server``).
        field_manager: the manager name recorded in ``managedFields``.
        recursive: read sub-folders too (``-R``).
        wait_crds: wait until CRDs of the batch are ``Established`` before their custom resources.
        crd_timeout: how long to wait for that (cluster seconds).
        kube: a :class:`Kube` or platform; default: the current lab's.
        show_kubectl: print the equivalent command first.

    Raises:
        NotFound, Invalid, Conflict, ...: naming the object and manifest that failed.
    """
    k = resolve(kube)
    ordered = manifests.apply_order(manifests.load(source, recursive=recursive))
    cmd = kubectl.apply_cmd(
        _files(source),
        namespace=namespace,
        field_manager=field_manager,
        force_conflicts=force,
        dry_run=dry_run,
        recursive=recursive,
    )
    if show_kubectl:
        print(f"$ {cmd}")
    items: list[Applied] = []
    pending_crds: list[str] = []
    batch_kinds: set[tuple[str, str]] = set()
    for m in ordered:
        group = refs.group_of(m.api_version)
        if pending_crds and m.kind not in {"CustomResourceDefinition", "Namespace"}:
            if wait_crds:
                _wait_established(k, pending_crds, crd_timeout)
            pending_crds = []
            k.forget_discovery()
        ref = kubectl_ref(m.api_version, m.kind, m.name)
        try:
            ns = _namespace_for(k, m, namespace)
        except NotFound as exc:
            if dry_run and (group, m.kind) in batch_kinds:
                items.append(Applied(ref, m.namespace or namespace, "skipped", m.source))
                continue
            raise with_context(exc, f"applying {ref} ({m.source})") from exc
        try:
            before = k.try_get(m.api_version, m.kind, m.name, ns) if m.name else None
            after = k.server_side_apply(m.obj, namespace=ns, field_manager=field_manager, force=force, dry_run=dry_run)
        except LabkitError as exc:
            raise with_context(exc, f"applying {ref} ({m.source})") from exc
        if before is None:
            action = "created"
        elif (before.get("metadata") or {}).get("resourceVersion") == (after.get("metadata") or {}).get(
            "resourceVersion"
        ):
            action = "unchanged"
        else:
            action = "configured"
        items.append(Applied(ref, ns, action, m.source, after))
        if m.kind == "CustomResourceDefinition":
            batch_kinds.add(_crd_kinds(m))
            if not dry_run:
                pending_crds.append(m.name)
    if pending_crds and wait_crds:
        _wait_established(k, pending_crds, crd_timeout)
        k.forget_discovery()
    return ApplyResult(tuple(items), cmd, dry_run)


def delete(
    source: Any,
    *,
    namespace: str | None = None,
    propagation: str = "Background",
    wait: bool = True,
    timeout: float = DELETE_TIMEOUT_S,
    ignore_missing: bool = True,
    recursive: bool = False,
    kube: Any = None,
    show_kubectl: bool = False,
) -> ApplyResult:
    """Delete what a manifest (folder, text, dicts) describes, workloads first and namespaces last.

    Args:
        source: what to delete (see :func:`labkit.kube.manifests.load`).
        namespace: namespace for namespaced objects that name none.
        propagation: ``Background``, ``Foreground`` or ``Orphan`` for dependents.
        wait: wait until each object is gone (finalizers done).
        timeout: how long to wait per object (cluster seconds).
        ignore_missing: treat objects that do not exist as done (``--ignore-not-found``).
        recursive: read sub-folders too.
        kube: a :class:`Kube` or platform; default: the current lab's.
        show_kubectl: print the equivalent command first.

    Raises:
        WaitTimeout: an object did not go away in time (the message says what holds it).
    """
    k = resolve(kube)
    ordered = manifests.delete_order(manifests.load(source, recursive=recursive))
    cmd = kubectl.delete_cmd(
        _files(source),
        namespace=namespace,
        cascade=propagation.lower(),
        wait=wait,
        timeout=timeout,
        ignore_not_found=ignore_missing,
    )
    if show_kubectl:
        print(f"$ {cmd}")
    items: list[Applied] = []
    for m in ordered:
        ref = kubectl_ref(m.api_version, m.kind, m.name)
        try:
            ns = _namespace_for(k, m, namespace)
            answer = k.delete(m.api_version, m.kind, m.name, ns, propagation=propagation)
        except NotFound as exc:
            if not ignore_missing:
                raise with_context(exc, f"deleting {ref} ({m.source})") from exc
            items.append(Applied(ref, m.namespace or namespace, "not found", m.source))
            continue
        except LabkitError as exc:
            raise with_context(exc, f"deleting {ref} ({m.source})") from exc
        items.append(Applied(ref, ns, "deleted", m.source, answer or {}))
    if wait:
        for item, m in zip(items, ordered, strict=True):
            if item.action == "deleted":
                wait_deleted(
                    {**m.obj, "metadata": {**m.metadata, "namespace": item.namespace}},
                    timeout=timeout,
                    kube=k,
                    progress=False,
                )
    return ApplyResult(tuple(items), cmd)


def delete_resource(
    ref: str,
    name: str | None = None,
    *,
    namespace: str | None = None,
    label_selector: str | None = None,
    propagation: str = "Background",
    wait: bool = True,
    timeout: float = DELETE_TIMEOUT_S,
    ignore_missing: bool = True,
    kube: Any = None,
    show_kubectl: bool = False,
) -> ApplyResult:
    """Delete by reference: ``delete_resource("deployment/vllm", namespace="serving")`` or by label selector."""
    k = resolve(kube)
    resource, name = refs.parse_ref(ref, name)
    res = k.resolve(resource)
    api_version, kind = res.group_version, res.kind
    ns = (namespace or "default") if res.namespaced else None
    shown = refs.display_ref(api_version, kind, name) if name else refs.display_name(api_version, kind)
    cmd = kubectl.delete_cmd(
        ref=shown,
        namespace=ns,
        selector=label_selector,
        cascade=propagation.lower(),
        wait=wait,
        timeout=timeout,
        ignore_not_found=ignore_missing,
    )
    if show_kubectl:
        print(f"$ {cmd}")
    if name:
        names: Sequence[str] = [name]
    elif label_selector:
        names = [o["metadata"]["name"] for o in k.list(api_version, kind, ns, label_selector=label_selector)]
    else:
        raise NotFound(f"delete_resource({ref!r}) names no object", "give a name or a label_selector")
    items = []
    for n in names:
        kref = kubectl_ref(api_version, kind, n)
        try:
            answer = k.delete(api_version, kind, n, ns, propagation=propagation)
        except NotFound:
            if not ignore_missing:
                raise
            items.append(Applied(kref, ns, "not found"))
            continue
        items.append(Applied(kref, ns, "deleted", "", answer or {}))
    if wait:
        for item in items:
            if item.action == "deleted":
                target = {
                    "apiVersion": api_version,
                    "kind": kind,
                    "metadata": {"name": item.ref.split("/", 1)[1], "namespace": ns},
                }
                wait_deleted(target, timeout=timeout, kube=k, progress=False)
    return ApplyResult(tuple(items), cmd)
