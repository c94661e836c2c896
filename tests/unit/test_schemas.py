"""Schema sync (pinned, checksummed) and validation of custom and built-in resources."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labkit import schemas, settings
from labkit.errors import ConfigError

SHARED = os.environ.get("LABKIT_SCHEMAS_DIR", "")
needs_schemas = pytest.mark.skipif(
    not SHARED or schemas.missing(Path(SHARED)) != [],
    reason="upstream CRD schemas not found: run `labkit schemas sync` or set LABKIT_SCHEMAS_DIR "
    "(CI points it at ../shared/schemas/crds)",
)

NODEPOOL = {
    "apiVersion": "karpenter.sh/v1",
    "kind": "NodePool",
    "metadata": {"name": "gpu"},
    "spec": {
        "template": {
            "spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"},
                "requirements": [{"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g6"]}],
                "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
            }
        },
        "limits": {"nvidia.com/gpu": 4},
    },
}


def test_every_pinned_source_has_a_checksum_and_kinds() -> None:
    files, k8s = schemas.sources()
    assert k8s.count(".") == 1
    assert len(files) >= 20
    for source in files:
        assert len(source.sha256) == 16 and source.kinds
        assert source.url.startswith("https://raw.githubusercontent.com/") and source.ref in source.url


@needs_schemas
def test_sync_fetches_verifies_and_skips_present_files(tmp_path: Path) -> None:
    s = settings.load({"home": tmp_path}, environ={}, use_files=False)
    by_url = {src.url: Path(SHARED) / src.relpath for src in schemas.sources()[0]}
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return by_url[url].read_bytes()

    written = schemas.sync(s, fetch)
    assert len(written) == len(by_url) == len(fetched)
    assert schemas.missing(tmp_path / "schemas") == []
    assert schemas.sync(s, fetch) == []  # already there: nothing fetched again
    assert len(fetched) == len(by_url)


def test_sync_rejects_a_file_that_changed_upstream(tmp_path: Path) -> None:
    s = settings.load({"home": tmp_path}, environ={}, use_files=False)
    with pytest.raises(ConfigError, match="does not match its pinned SHA-256"):
        schemas.sync(s, lambda url: b"not the pinned file")


@needs_schemas
def test_valid_and_invalid_nodepools() -> None:
    schema_set = schemas.SchemaSet(Path(SHARED))
    assert schema_set.validate(NODEPOOL) == []
    bad = {**NODEPOOL, "spec": {**NODEPOOL["spec"], "disruption": {"consolidationPolicy": "Sometimes"}}}
    problems = schema_set.validate(bad)
    assert any("consolidationPolicy" in p or "consolidateAfter" in p for p in problems), problems


@needs_schemas
def test_gateway_api_variant_by_folder() -> None:
    schema_set = schemas.SchemaSet(Path(SHARED))
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r"},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "svc", "port": 80}]}]},
    }
    assert schema_set.validate(route) == []
    assert schema_set.validate(route, variant="gateway-api-v1.4.1") == []


def test_builtins_use_kubernetes_validate() -> None:
    good = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}}
    assert schemas.validate_builtin(good) == []
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "dta": {"a": "b"}}
    assert schemas.validate_builtin(bad)


def test_missing_schema_folder_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="labkit schemas sync"):
        schemas.SchemaSet(tmp_path).validate(NODEPOOL)
