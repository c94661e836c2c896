"""Manifest loading and apply order (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.errors import Invalid, NotFound
from labkit.kube import manifests

MULTI = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
---
# only a comment: an empty document
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: karpenter.sh/v1
kind: NodePool
metadata: {name: gpu}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
"""


def test_multi_document_text_skips_empty_documents_and_keeps_sources() -> None:
    loaded = manifests.parse_text(MULTI, "inline.yaml")
    assert [m.kind for m in loaded] == [
        "Deployment",
        "Namespace",
        "NodePool",
        "CustomResourceDefinition",
        "ConfigMap",
        "ClusterRole",
    ]
    assert loaded[0].source == "inline.yaml#1"
    assert loaded[1].source == "inline.yaml#3"  # document 2 was empty
    assert loaded[0].namespace == "shop" and loaded[2].namespace is None


def test_apply_order_puts_namespaces_then_crds_then_cluster_scoped_then_the_rest_stably() -> None:
    ordered = manifests.apply_order(manifests.parse_text(MULTI))
    assert [m.kind for m in ordered] == [
        "Namespace",
        "CustomResourceDefinition",
        "NodePool",
        "ClusterRole",
        "Deployment",
        "ConfigMap",
    ]
    assert [m.kind for m in manifests.delete_order(manifests.parse_text(MULTI))] == [
        "ConfigMap",
        "Deployment",
        "ClusterRole",
        "NodePool",
        "CustomResourceDefinition",
        "Namespace",
    ]


def test_list_kinds_are_flattened() -> None:
    text = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}},
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b"}},
            ],
        }
    )
    loaded = manifests.parse_text(text, "list.json")
    assert [m.name for m in loaded] == ["a", "b"]
    assert loaded[1].source == "list.json#1.items[2]"


def test_folder_reads_yaml_and_json_files_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: second}\n")
    (tmp_path / "a.json").write_text(
        json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "first"}})
    )
    (tmp_path / "notes.txt").write_text("not a manifest")
    (tmp_path / "empty.yml").write_text("---\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "c.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: nested}\n")
    assert [m.name for m in manifests.load(tmp_path)] == ["first", "second"]
    assert [m.name for m in manifests.load(str(tmp_path), recursive=True)] == ["first", "second", "nested"]


def test_load_accepts_text_dicts_paths_and_lists(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n")
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    loaded = manifests.load([str(path), obj, "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\n"])
    assert [(m.kind, m.name) for m in loaded] == [("Secret", "s"), ("ConfigMap", "c"), ("Service", "svc")]
    one_line_json = '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x"}}'
    assert manifests.load(one_line_json)[0].name == "x"


def test_a_missing_file_is_not_found_not_parsed_as_yaml(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no manifest file"):
        manifests.load(str(tmp_path / "missing.yaml"))


def test_syntax_errors_name_the_source_and_line() -> None:
    with pytest.raises(Invalid, match=r"bad.yaml is not valid YAML \(line 4, column 1\): did not find expected"):
        manifests.parse_text("apiVersion: v1\nkind: Pod\nmetadata: {name: [x\n", "bad.yaml")


@pytest.mark.parametrize(
    ("doc", "missing"),
    [
        ("kind: Pod\nmetadata: {name: p}\n", "apiVersion"),
        ("apiVersion: v1\nmetadata: {name: p}\n", "kind"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {labels: {a: b}}\n", "metadata.name"),
    ],
)
def test_documents_without_identity_are_rejected(doc: str, missing: str) -> None:
    with pytest.raises(Invalid, match=f"has no {missing}"):
        manifests.parse_text(doc, "x.yaml")


def test_a_scalar_document_is_rejected() -> None:
    with pytest.raises(Invalid, match="not a Kubernetes object"):
        manifests.parse_text("just text", "x.yaml")
