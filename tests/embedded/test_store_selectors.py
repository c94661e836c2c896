"""Label and field selectors: every operator, the structured form, and parse errors."""

from __future__ import annotations

import pytest

from labkit.embedded.kube.selectors import (
    parse_field_selector,
    parse_label_selector,
    selector_from_object,
    selector_string,
)
from labkit.embedded.kube.store import Store
from labkit.errors import Invalid

LABELS = {"app": "web", "tier": "frontend", "track": "stable", "replicas": "3"}


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app=db", False),
        ("app!=db", True),
        ("app!=web", False),
        ("missing!=x", True),
        ("tier in (frontend,backend)", True),
        ("tier in (backend)", False),
        ("tier notin (backend, cache)", True),
        ("tier notin (frontend)", False),
        ("missing notin (x)", True),
        ("missing in (x)", False),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("app=web,tier=frontend", True),
        ("app=web,tier=backend", False),
        ("app=web, track in (stable), !canary", True),
        ("replicas>2", True),
        ("replicas<3", False),
        ("missing>1", False),
        ("app=", False),
    ],
)
def test_label_selector_operators(selector: str, selected: bool) -> None:
    assert parse_label_selector(selector).matches(LABELS) is selected


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("app=web,", "found '', expected: identifier"),
        ("tier in frontend", "expected: '('"),
        ("tier in (a b)", "expected: ',' or ')'"),
        ("=web", "expected: identifier"),
        ("app=bad value!", "unable to parse requirement"),
        ("bad key/x/y=1", "unable to parse requirement"),
        ("replicas>three", "the value must be an integer"),
        ("a in ()", "values set can't be empty"),
    ],
)
def test_label_selector_parse_errors_are_bad_requests(selector: str, message: str) -> None:
    with pytest.raises(Invalid) as info:
        parse_label_selector(selector)
    assert info.value.status == 400
    assert info.value.reason == "BadRequest"
    assert message in info.value.what


@pytest.mark.parametrize(
    ("selector", "labels", "selected"),
    [
        ({"matchLabels": {"app": "web"}}, {"app": "web", "x": "y"}, True),
        ({"matchLabels": {"app": "web"}}, {"app": "db"}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}, {"tier": "b"}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]}, {"tier": "a"}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {}, True),
        ({}, {"anything": "x"}, True),
        (None, {"anything": "x"}, False),
    ],
)
def test_structured_selectors(selector: dict | None, labels: dict[str, str], selected: bool) -> None:
    assert selector_from_object(selector).matches(labels) is selected


def test_selector_string_round_trips() -> None:
    obj = {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]}
    text = selector_string(obj)
    assert text == "app=web,tier in (a,b)"
    assert parse_label_selector(text) == selector_from_object(obj)


def test_unknown_structured_operator_is_invalid() -> None:
    with pytest.raises(Invalid):
        selector_from_object({"matchExpressions": [{"key": "a", "operator": "Near"}]})


POD = {
    "metadata": {"name": "web-1", "namespace": "prod"},
    "spec": {"nodeName": "node-a", "restartPolicy": "Always"},
    "status": {"phase": "Running"},
}


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        ("metadata.name=web-1", True),
        ("metadata.name==web-1", True),
        ("metadata.name!=web-1", False),
        ("metadata.namespace=prod", True),
        ("spec.nodeName=node-a", True),
        ("spec.nodeName=", False),
        ("spec.nodeName!=node-b,status.phase=Running", True),
        ("status.phase!=Running", False),
        ("status.phase=Pending", False),
    ],
)
def test_field_selectors(selector: str, selected: bool) -> None:
    assert parse_field_selector(selector, "pods").matches(POD) is selected


def test_unsupported_field_is_a_bad_request() -> None:
    with pytest.raises(Invalid) as info:
        parse_field_selector("spec.nodeName=x", "configmaps")
    assert info.value.status == 400
    assert "field label not supported: spec.nodeName" in info.value.what
    with pytest.raises(Invalid) as info:
        parse_field_selector("status.phase", "pods")
    assert info.value.status == 400


def test_store_list_with_selectors(store: Store) -> None:
    for name, labels, node in (("a", {"app": "web"}, "n1"), ("b", {"app": "web", "canary": "1"}, ""), ("c", {}, "n1")):
        body = {"metadata": {"name": name, "labels": labels}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
        store.create("pods", body, namespace="default")
        if node:
            store.patch("pods", "default", name, {"spec": {"nodeName": node}}, "merge")

    def names(**kwargs: str) -> list[str]:
        return [p["metadata"]["name"] for p in store.list("pods", "default", **kwargs)[0]]

    assert names(label_selector="app=web") == ["a", "b"]
    assert names(label_selector="app=web,!canary") == ["a"]
    assert names(field_selector="spec.nodeName=n1") == ["a", "c"]
    assert names(field_selector="spec.nodeName=") == ["b"]
    assert names(label_selector="app", field_selector="metadata.name=b") == ["b"]
    with pytest.raises(Invalid):
        store.list("pods", label_selector="app in (")
