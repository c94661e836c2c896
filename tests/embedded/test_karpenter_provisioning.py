"""The embedded Karpenter's pure provisioning: catalog, requirements, offering choice, bin-packing, limits, taints."""

from __future__ import annotations

from typing import Any

import pytest

from labkit import planner
from labkit.compute import nodepools as builders
from labkit.embedded.kube.karpenter import catalog
from labkit.embedded.kube.karpenter.nodepool import Pool, builtin_nodepools
from labkit.embedded.kube.karpenter.provisioner import (
    Plan,
    PoolContext,
    format_resources,
    instance_options,
    prepare_pools,
    schedule,
)
from labkit.embedded.kube.karpenter.requirements import Requirement, Requirements, pod_requirement_terms
from labkit.embedded.kube.nodes import make_node, node_resources
from labkit.embedded.kube.scheduler import Snapshot, resource_list

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
OFFERINGS = catalog.offerings("us-west-2")
OPTIONS = {p: instance_options(OFFERINGS, p) for p in ("karpenter", "auto")}


def pod(
    name: str = "p",
    *,
    cpu: str = "1",
    memory: str = "1Gi",
    gpus: int = 0,
    tolerate_gpu: bool | None = None,
    selector: dict[str, str] | None = None,
    affinity: list[dict[str, Any]] | None = None,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    requests: dict[str, str] = {"cpu": cpu, "memory": memory}
    limits: dict[str, str] = {}
    if gpus:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(gpus)
    body: dict[str, Any] = {
        "containers": [{"name": "c", "image": "nginx", "resources": {"requests": requests, "limits": limits}}],
        **spec,
    }
    if tolerate_gpu or (tolerate_gpu is None and gpus):
        body["tolerations"] = [GPU_TOLERATION]
    if selector:
        body["nodeSelector"] = selector
    if affinity:
        body["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": affinity}]
                }
            }
        }
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": labels or {}},
        "spec": body,
        "status": {"phase": "Pending"},
    }


def nodepool(
    name: str,
    requirements: list[dict[str, Any]],
    *,
    taints: list[dict[str, Any]] | None = None,
    limits: dict[str, str] | None = None,
    weight: int | None = None,
    labels: dict[str, str] | None = None,
    group: str = "karpenter.k8s.aws",
) -> dict[str, Any]:
    kind = "EC2NodeClass" if group == "karpenter.k8s.aws" else "NodeClass"
    tspec: dict[str, Any] = {
        "nodeClassRef": {"group": group, "kind": kind, "name": "default"},
        "requirements": requirements,
    }
    if taints:
        tspec["taints"] = taints
    spec: dict[str, Any] = {"template": {"metadata": {"labels": labels or {}}, "spec": tspec}}
    if limits:
        spec["limits"] = limits
    if weight is not None:
        spec["weight"] = weight
    return {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": name}, "spec": spec}


def gpu_pool(profile: str = "standard", **kw: Any) -> dict[str, Any]:
    return builders.nodepool(builders.GpuPool(**kw), profile)


def ctxs(*nodepools: dict[str, Any], daemonsets: list[dict[str, Any]] | None = None) -> list[PoolContext]:
    return prepare_pools([Pool.from_nodepool(np) for np in nodepools], OPTIONS, daemonsets=daemonsets or [])


def plan_for(pods: list[dict[str, Any]], *nodepools: dict[str, Any], **kw: Any) -> Plan:
    return schedule(pods, ctxs(*nodepools), all_options=OPTIONS, **kw)


def launched(plan: Plan) -> list[tuple[str, str, str]]:
    out = []
    for claim in plan.claims:
        o = claim.cheapest()
        assert o is not None
        out.append((o.name, o.capacity_type, o.zone))
    return out


# --------------------------------------------------------------------------- catalog


def test_catalog_takes_gpu_types_and_prices_from_the_planner() -> None:
    types = catalog.instance_types()
    for it in planner.instance_types():
        info = types[it.name]
        assert (info.gpus, info.vcpu, info.price) == (it.gpu_count, it.vcpu, it.price_per_hour)
        assert info.gpu_name == it.gpu_spec.label and info.gpu_memory_mib == it.gpu_spec.memory_mib
    # General-purpose types for Auto Mode's built-in pools come from the same data file.
    assert types["m6i.large"].price == pytest.approx(0.096) and types["m6i.large"].gpus == 0
    assert types["m7g.large"].arch == "arm64"
    assert {"c6i.large", "c7i.4xlarge", "r7i.xlarge", "t3.medium"} <= set(types)


def test_instance_labels_follow_karpenter_and_auto_mode_keys() -> None:
    g6e = catalog.get("g6e.2xlarge")
    labels = g6e.labels("karpenter.k8s.aws")
    assert labels["karpenter.k8s.aws/instance-family"] == "g6e"
    assert labels["karpenter.k8s.aws/instance-category"] == "g"
    assert labels["karpenter.k8s.aws/instance-generation"] == "6"
    assert labels["karpenter.k8s.aws/instance-size"] == "2xlarge"
    assert labels["karpenter.k8s.aws/instance-gpu-name"] == "l40s"
    assert labels["karpenter.k8s.aws/instance-gpu-manufacturer"] == "nvidia"
    assert labels["karpenter.k8s.aws/instance-gpu-count"] == "1"
    assert labels["karpenter.k8s.aws/instance-memory"] == str(64 * 1024)
    auto = catalog.get("c7i.xlarge").labels("eks.amazonaws.com")
    assert auto["eks.amazonaws.com/instance-category"] == "c" and "eks.amazonaws.com/instance-gpu-count" not in auto


def test_offerings_cover_every_zone_and_capacity_type_with_spot_discounts() -> None:
    g6 = [o for o in OFFERINGS if o.name == "g6.xlarge"]
    assert {(o.zone, o.capacity_type) for o in g6} == {
        (f"us-west-2{z}", ct) for z in "abc" for ct in ("spot", "on-demand")
    }
    on_demand = {o.price for o in g6 if o.capacity_type == "on-demand"}
    assert on_demand == {planner.get_instance_type("g6.xlarge").price_per_hour}
    spot = {o.zone: o.price for o in g6 if o.capacity_type == "spot"}
    assert all(p < min(on_demand) * 0.6 for p in spot.values())
    assert spot["us-west-2b"] < spot["us-west-2a"] < spot["us-west-2c"]  # spot markets differ by zone
    # p5e has no on-demand price (Capacity Blocks only): nothing to launch.
    assert not [o for o in OFFERINGS if o.name == "p5e.48xlarge"]


def test_planned_allocatable_matches_the_node_that_registers() -> None:
    for name in ("g6.xlarge", "m7i.4xlarge", "r7i.large"):
        info = catalog.get(name)
        node = make_node("n", name, "us-west-2a", now=0)
        assert info.allocatable_units == resource_list(node["status"]["allocatable"])
        assert node_resources(info.shape())[1] == node["status"]["allocatable"]


def test_launch_time_depends_on_the_instance_type() -> None:
    cpu = [catalog.get("m6i.large").launch_seconds(str(i)) for i in range(30)]
    gpu = [catalog.get("g6.xlarge").launch_seconds(str(i)) for i in range(30)]
    assert all(45 <= t <= 60 for t in cpu) and all(90 <= t <= 120 for t in gpu)
    assert catalog.get("g6.xlarge").launch_seconds("x") == catalog.get("g6.xlarge").launch_seconds("x")


# --------------------------------------------------------------------------- requirements


@pytest.mark.parametrize(
    ("operator", "values", "value", "ok"),
    [
        ("In", ["g5", "g6"], "g6", True),
        ("In", ["g5"], "g6", False),
        ("NotIn", ["g5"], "g6", True),
        ("NotIn", ["g6"], "g6", False),
        ("Exists", [], "anything", True),
        ("DoesNotExist", [], "anything", False),
        ("Gt", ["4"], "5", True),
        ("Gt", ["4"], "4", False),
        ("Lt", ["2"], "1", True),
        ("Lt", ["2"], "2", False),
        ("Gt", ["4"], "large", False),
    ],
)
def test_requirement_operators(operator: str, values: list[str], value: str, ok: bool) -> None:
    assert Requirement.of("k", operator, values).has(value) is ok


def test_requirements_intersect_and_print_like_karpenter() -> None:
    pool = Requirements.from_expressions(
        [
            {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g6", "g5"]},
            {"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["4"]},
        ]
    )
    pod_reqs = Requirements.from_expressions(
        [{"key": "karpenter.k8s.aws/instance-family", "operator": "NotIn", "values": ["g5"]}]
    )
    merged = pool.merged(pod_reqs)
    assert str(merged) == "karpenter.k8s.aws/instance-family In [g6], karpenter.k8s.aws/instance-generation Exists >4"
    clash = Requirements.from_labels({"karpenter.k8s.aws/instance-family": "p5"})
    assert pool.compatible(clash) == (
        "key karpenter.k8s.aws/instance-family, karpenter.k8s.aws/instance-family In [p5] not in "
        "karpenter.k8s.aws/instance-family In [g5 g6]"
    )
    # Pods may require well-known labels a pool does not mention, but not unknown custom ones.
    well_known = frozenset({"topology.kubernetes.io/zone"})
    assert pool.compatible(Requirements.from_labels({"topology.kubernetes.io/zone": "us-west-2a"}), well_known) is None
    assert (
        pool.compatible(Requirements.from_labels({"team": "ml"}), well_known)
        == 'label "team" does not have known values'
    )
    # Beta labels are normalised; required node affinity terms are alternatives.
    terms = pod_requirement_terms(
        pod(
            selector={"beta.kubernetes.io/arch": "amd64"},
            affinity=[{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}],
        )
    )
    assert [str(t) for t in terms] == ["karpenter.sh/capacity-type In [spot], kubernetes.io/arch In [amd64]"]


# --------------------------------------------------------------------------- choosing an offering


def test_cheapest_instance_type_that_fits_the_pod() -> None:
    plan = plan_for([pod(gpus=1)], gpu_pool(families=("g5", "g6", "g6e")))
    assert launched(plan) == [("g6.xlarge", "on-demand", "us-west-2a")]
    plan = plan_for([pod(cpu="6", memory="24Gi", gpus=1)], gpu_pool(families=("g5", "g6", "g6e")))
    assert launched(plan)[0][0] == "g6.2xlarge"  # 6 CPUs do not fit the 4-vCPU xlarge
    assert plan.claims[0].instance_type_names()[0] == "g6.2xlarge"


def test_gpu_count_and_memory_requirements() -> None:
    four = plan_for([pod(gpus=4)], gpu_pool(families=("g5", "g6", "g6e"), gpu_limit=8))
    assert launched(four)[0][0] == "g6.12xlarge"
    big_memory = plan_for([pod(gpus=1)], gpu_pool(families=("g5", "g6", "g6e"), min_gpu_memory_gib=40))
    assert launched(big_memory)[0][0] == "g6e.xlarge"
    one_gpu = gpu_pool(families=("g6",), gpu_counts=(1,))
    blocked = plan_for([pod(gpus=4)], one_gpu)
    assert not blocked.claims and "no instance type" in blocked.errors["default/p"][0]


def test_lt_and_does_not_exist_select_cpu_only_types() -> None:
    cpu_only = nodepool(
        "cpu",
        [
            {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "DoesNotExist"},
            {"key": "karpenter.k8s.aws/instance-cpu", "operator": "Lt", "values": ["8"]},
            {"key": "karpenter.k8s.aws/instance-family", "operator": "NotIn", "values": ["t3"]},
            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
        ],
    )
    plan = plan_for([pod(cpu="3", memory="4Gi")], cpu_only)
    name = launched(plan)[0][0]
    assert name == "c6i.xlarge"  # cheapest amd64 non-t3 type with 4 vCPUs (3 CPUs do not fit 2 vCPUs)
    too_big = plan_for([pod(cpu="10")], cpu_only)
    assert "(no instance type has enough resources)" in too_big.errors["default/p"][0]


def test_spot_is_preferred_when_the_pool_allows_it() -> None:
    both = gpu_pool(families=("g6",), capacity_types=("spot", "on-demand"))
    assert launched(plan_for([pod(gpus=1)], both)) == [("g6.xlarge", "spot", "us-west-2b")]  # cheapest spot zone
    only_a = plan_for([pod(gpus=1, selector={"topology.kubernetes.io/zone": "us-west-2a"})], both)
    assert launched(only_a) == [("g6.xlarge", "spot", "us-west-2a")]
    on_demand = plan_for(
        [pod(gpus=1, affinity=[{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}])], both
    )
    assert launched(on_demand)[0][1] == "on-demand"


def test_unavailable_offerings_are_skipped() -> None:
    both = gpu_pool(families=("g6",), capacity_types=("spot", "on-demand"))
    gone = frozenset({("g6.xlarge", "us-west-2b", "spot")})
    plan = schedule([pod(gpus=1)], ctxs(both), unavailable=gone)
    assert launched(plan) == [("g6.xlarge", "spot", "us-west-2a")]


def test_higher_weight_pool_wins_even_when_dearer() -> None:
    cheap = gpu_pool(name="cheap", families=("g6",))
    preferred = gpu_pool(name="preferred", families=("g6e",), weight=50)
    plan = plan_for([pod(gpus=1)], cheap, preferred)
    assert [c.pool.name for c in plan.claims] == ["preferred"]
    assert launched(plan)[0][0] == "g6e.xlarge"


def test_pods_are_bin_packed_onto_one_node() -> None:
    general = nodepool("general", [{"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["m"]}])
    pods = [pod(f"p{i}", cpu="500m", memory="512Mi") for i in range(5)]
    plan = plan_for(pods, general)
    assert len(plan.claims) == 1 and len(plan.claims[0].pods) == 5
    assert launched(plan)[0][0] in ("m7g.xlarge", "m6i.xlarge", "m5.xlarge")  # 2.5 CPUs need 4 vCPUs
    assert catalog.get(launched(plan)[0][0]).vcpu == 4


def test_required_hostname_anti_affinity_spreads_pods_over_nodes() -> None:
    term = {"labelSelector": {"matchLabels": {"app": "llm"}}, "topologyKey": "kubernetes.io/hostname"}
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    pods = [pod(f"p{i}", gpus=1, labels={"app": "llm"}, affinity=None) for i in range(2)]
    for p in pods:
        p["spec"]["affinity"] = anti
    plan = plan_for(pods, gpu_pool(families=("g6",), gpu_limit=8))
    assert len(plan.claims) == 2
    assert launched(plan) == [("g6.xlarge", "on-demand", "us-west-2a")] * 2


def test_existing_and_in_flight_nodes_are_used_first() -> None:
    node = make_node(
        "gpu-a", "g6.12xlarge", "us-west-2a", {"karpenter.sh/nodepool": "gpu"}, [builders.GPU_TAINT], now=0
    )
    snapshot = Snapshot.build([node], [])
    plan = schedule([pod("a", gpus=1), pod("b", gpus=1)], ctxs(gpu_pool(families=("g6",))), snapshot=snapshot)
    assert not plan.claims and plan.existing == {"default/a": "gpu-a", "default/b": "gpu-a"}


def test_daemonset_overhead_is_counted() -> None:
    ds = {
        "metadata": {"name": "agent", "namespace": "kube-system"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [{"name": "a", "image": "agent", "resources": {"requests": {"cpu": "600m"}}}],
                },
            }
        },
    }
    general = nodepool("general", [{"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["m6i"]}])
    (ctx,) = ctxs(general, daemonsets=[ds])
    assert format_resources(ctx.overhead) == '{"cpu":"600m","pods":"1"}'
    # 1.5 CPUs fit the 1930m allocatable of an m6i.large, but not with the agent's 600m on top.
    plan = schedule([pod(cpu="1500m")], [ctx])
    assert launched(plan)[0][0] == "m6i.xlarge"


# --------------------------------------------------------------------------- limits and taints


def test_limits_block_with_karpenter_reason() -> None:
    pool = gpu_pool(families=("g6",), gpu_limit=1)
    used = {"gpu": {"nvidia.com/gpu": 1, "cpu": 4000}}
    plan = schedule([pod(gpus=1)], ctxs(pool), usage=used)
    assert not plan.claims
    assert (
        plan.message("default/p")
        == 'Failed to schedule pod, all available instance types exceed limits for nodepool: "gpu"'
    )
    # Within the limit only the types that fit it are candidates: 2 GPUs left rule out 4-GPU types.
    plan = schedule([pod(gpus=1)], ctxs(gpu_pool(families=("g6",), gpu_limit=3)), usage=used)
    assert all(catalog.get(n).gpus <= 2 for n in plan.claims[0].instance_type_names())


def test_taints_need_tolerations() -> None:
    gpu = gpu_pool(families=("g6",))
    plan = plan_for([pod(gpus=1, tolerate_gpu=False)], gpu)
    assert plan.errors["default/p"] == [
        'incompatible with nodepool "gpu", daemonset overhead={}, did not tolerate nvidia.com/gpu=true:NoSchedule'
    ]
    assert launched(plan_for([pod(gpus=1)], gpu))


def test_auto_mode_built_in_pools() -> None:
    general, system = builtin_nodepools()
    plan = schedule([pod(cpu="1", memory="2Gi")], ctxs(general, system))
    assert [c.pool.name for c in plan.claims] == ["general-purpose"]
    name = launched(plan)[0][0]
    info = catalog.get(name)
    assert info.category in "cmr" and int(info.generation) >= 5 and info.arch == "amd64" and name == "c6i.large"
    critical = pod(cpu="100m", tolerations=[{"key": "CriticalAddonsOnly", "operator": "Exists"}])
    only_system = schedule([critical], ctxs(system))
    assert launched(only_system)[0][0] == "m7g.large"  # the system pool allows arm64, the cheapest fit
    gpu = schedule([pod(gpus=1)], ctxs(general, system))
    assert not gpu.claims and len(gpu.errors["default/p"]) == 2  # neither built-in pool offers GPUs
    auto_gpu = gpu_pool("auto", families=("g6",))
    assert launched(schedule([pod(gpus=1)], ctxs(general, system, auto_gpu)))[0][0] == "g6.xlarge"
