"""Disruption decisions: cron schedules, budgets, emptiness, consolidation, PDBs and do-not-disrupt."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pytest

from labkit.compute import nodepools as builders
from labkit.embedded.kube.karpenter import catalog
from labkit.embedded.kube.karpenter.cron import Cron
from labkit.embedded.kube.karpenter.disruption import (
    EMPTY,
    UNDERUTILIZED,
    Candidate,
    allowed_disruptions,
    blocked_reason,
    budget_active,
    decide,
    pdb_disruptions_allowed,
)
from labkit.embedded.kube.karpenter.nodepool import Pool, parse_duration
from labkit.embedded.kube.karpenter.provisioner import Plan, build_snapshot, instance_options, prepare_pools, schedule
from labkit.embedded.kube.nodes import make_node

OPTIONS = {p: instance_options(catalog.offerings("us-west-2"), p) for p in ("karpenter", "auto")}


def at(text: str) -> float:
    """Epoch seconds of a UTC time like ``2026-03-02 09:30`` (a Monday)."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


# --------------------------------------------------------------------------- durations and cron


def test_durations() -> None:
    assert parse_duration("30s") == 30 and parse_duration("10m") == 600 and parse_duration("1h30m") == 5400
    assert parse_duration("720h") == 720 * 3600 and parse_duration("Never") is None
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("10 minutes")


def test_cron_fields_names_and_macros() -> None:
    weekdays = Cron.parse("0 8 * * mon-fri")
    assert weekdays.matches(dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC))  # Monday
    assert not weekdays.matches(dt.datetime(2026, 3, 7, 8, 0, tzinfo=dt.UTC))  # Saturday
    assert Cron.parse("*/15 * * * *").minutes == frozenset({0, 15, 30, 45})
    assert Cron.parse("@daily") == Cron.parse("0 0 * * *")
    assert Cron.parse("0 0 * * 7").weekdays == frozenset({0})  # Sunday as 7
    # Day of month and day of week both restricted: either matches (Vixie cron).
    either = Cron.parse("0 0 13 * fri")
    assert either.matches(dt.datetime(2026, 3, 13, tzinfo=dt.UTC)) and either.matches(
        dt.datetime(2026, 3, 6, tzinfo=dt.UTC)
    )
    assert weekdays.next_after(at("2026-03-06 08:00")) == at("2026-03-09 08:00")  # Friday 8:00 -> Monday 8:00
    with pytest.raises(ValueError, match="5 fields"):
        Cron.parse("0 8 * *")


def test_budget_window_on_the_simulated_clock() -> None:
    business = {"nodes": "0", "schedule": "0 8 * * mon-fri", "duration": "10h"}
    assert budget_active(business, at("2026-03-02 08:00"))  # opens at the firing
    assert budget_active(business, at("2026-03-02 17:59"))
    assert not budget_active(business, at("2026-03-02 18:01"))  # 10 hours later it is closed
    assert not budget_active(business, at("2026-03-02 07:59"))
    assert not budget_active(business, at("2026-03-07 12:00"))  # Saturday
    assert budget_active({"nodes": "1"}, at("2026-03-07 12:00"))  # no schedule: always


def test_allowed_disruptions_take_the_most_restrictive_active_budget() -> None:
    pool = Pool.from_nodepool(builders.nodepool(builders.GpuPool(), "standard"))
    # The kit's GPU pools: 1 node at a time; nothing but empty nodes during working hours.
    monday = allowed_disruptions(pool, 4, at("2026-03-02 10:00"))
    assert monday == {"Empty": 1, "Underutilized": 0, "Drifted": 0}
    sunday = allowed_disruptions(pool, 4, at("2026-03-08 10:00"))
    assert sunday == {"Empty": 1, "Underutilized": 1, "Drifted": 1}
    percent = Pool.from_nodepool(
        {"metadata": {"name": "p"}, "spec": {"template": {"spec": {}}, "disruption": {"budgets": [{"nodes": "10%"}]}}}
    )
    assert allowed_disruptions(percent, 11, 0)["Empty"] == 2  # 10% of 11 rounds up
    assert allowed_disruptions(percent, 0, 0)["Empty"] == 0
    broken = Pool.from_nodepool(
        {
            "metadata": {"name": "p"},
            "spec": {
                "template": {"spec": {}},
                "disruption": {"budgets": [{"nodes": "5", "schedule": "bad", "duration": "1h"}]},
            },
        }
    )
    assert allowed_disruptions(broken, 10, 0)["Empty"] == 0  # a broken schedule fails closed


# --------------------------------------------------------------------------- candidates and decisions


def nodepool(
    name: str = "general", policy: str = "WhenEmptyOrUnderutilized", after: str = "30s", budgets: Any = None
) -> Pool:
    disruption: dict[str, Any] = {"consolidationPolicy": policy, "consolidateAfter": after}
    if budgets is not None:
        disruption["budgets"] = budgets
    return Pool.from_nodepool(
        {
            "metadata": {"name": name},
            "spec": {
                "template": {
                    "spec": {
                        "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                        "requirements": [
                            {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["m6i"]},
                            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand", "spot"]},
                        ],
                    }
                },
                "disruption": disruption,
            },
        }
    )


def workload(name: str, node: str, cpu: str = "500m", **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "uid": name, "labels": {"app": "web"}, **meta},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "nginx", "resources": {"requests": {"cpu": cpu, "memory": "256Mi"}}}],
        },
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


def candidate(
    node: str,
    itype: str,
    pods: list[dict[str, Any]],
    pool: Pool,
    *,
    quiet_since: float = 0.0,
    capacity_type: str = "on-demand",
) -> Candidate:
    info = catalog.get(itype)
    labels = {"karpenter.sh/nodepool": pool.name, "karpenter.sh/capacity-type": capacity_type}
    n = make_node(node, itype, "us-west-2a", labels, now=0)
    price = info.price if capacity_type == "on-demand" else catalog.spot_price(info, "us-west-2a")
    claim = {"metadata": {"name": f"claim-{node}", "labels": {**labels, "node.kubernetes.io/instance-type": itype}}}
    return Candidate(n, claim, pool, pods, float(price or 0), capacity_type, quiet_since)


def simulator(pool: Pool, cands: Sequence[Candidate], others: list[dict[str, Any]], other_pods: list[dict[str, Any]]):
    ctxs = prepare_pools([pool], OPTIONS)

    def simulate(chosen: Sequence[Candidate]) -> Plan:
        gone = {c.name for c in chosen}
        nodes = [c.node for c in cands if c.name not in gone] + others
        bound = [p for c in cands if c.name not in gone for p in c.pods] + other_pods
        snapshot = build_snapshot(nodes, bound)
        return schedule([p for c in chosen for p in c.pods], ctxs, snapshot=snapshot)

    return simulate


def test_empty_nodes_go_once_quiet_for_consolidate_after() -> None:
    pool = nodepool(policy="WhenEmpty", after="10m")
    empty = candidate("a", "m6i.large", [], pool, quiet_since=1000)
    sim = simulator(pool, [empty], [], [])
    assert decide([empty], {"general": {"Empty": 5}}, sim, now=1000 + 599).command is None
    command = decide([empty], {"general": {"Empty": 5}}, sim, now=1000 + 600).command
    assert command is not None and command.reason == EMPTY and [c.name for c in command.candidates] == ["a"]
    assert command.action == "delete"


def test_budget_of_zero_blocks_and_says_so() -> None:
    pool = nodepool(policy="WhenEmpty")
    empties = [candidate(n, "m6i.large", [], pool) for n in "abc"]
    decision = decide(empties, {"general": {"Empty": 0}}, simulator(pool, empties, [], []), now=10_000)
    assert decision.command is None
    assert [m for _, m in decision.blocked_pools] == [
        "No allowed disruptions for disruption reason Empty due to blocking budget"
    ]
    two = decide(empties, {"general": {"Empty": 2}}, simulator(pool, empties, [], []), now=10_000).command
    assert two is not None and len(two.candidates) == 2


def test_underutilized_node_is_deleted_when_its_pods_fit_elsewhere() -> None:
    pool = nodepool()
    small = candidate("small", "m6i.large", [workload("w1", "small")], pool)
    big = candidate("big", "m6i.2xlarge", [workload("w2", "big")], pool)
    sim = simulator(pool, [small, big], [], [])
    command = decide([small, big], {"general": {UNDERUTILIZED: 1}}, sim, now=10_000).command
    assert command is not None and command.reason == UNDERUTILIZED and command.action == "delete"
    assert [c.name for c in command.candidates] == ["big"]  # the dearer node goes; its pod fits on "small"


def test_underutilized_node_is_replaced_by_a_cheaper_one() -> None:
    pool = nodepool()
    lonely = candidate("lonely", "m6i.4xlarge", [workload("w", "lonely", cpu="1")], pool)
    command = decide([lonely], {"general": {UNDERUTILIZED: 1}}, simulator(pool, [lonely], [], []), now=10_000).command
    assert command is not None and command.action == "replace"
    offering = command.replacements[0].cheapest()
    assert offering is not None and offering.capacity_type == "spot"  # the pool allows spot: cheapest of all
    assert offering.price < catalog.get("m6i.4xlarge").price


def test_spot_nodes_are_not_replaced_by_spot_and_when_empty_keeps_busy_nodes() -> None:
    pool = nodepool()
    spot = candidate("s", "m6i.4xlarge", [workload("w", "s", cpu="1")], pool, capacity_type="spot")
    decision = decide([spot], {"general": {UNDERUTILIZED: 1}}, simulator(pool, [spot], [], []), now=10_000)
    assert decision.command is None
    assert (
        decision.unconsolidatable[0][1]
        == "SpotToSpotConsolidation is disabled, can't replace a spot node with a spot node"
    )
    when_empty = nodepool(policy="WhenEmpty")
    busy = candidate("b", "m6i.4xlarge", [workload("w", "b", cpu="1")], when_empty)
    assert (
        decide([busy], {"general": {UNDERUTILIZED: 1}}, simulator(when_empty, [busy], [], []), now=10_000).command
        is None
    )


def test_do_not_disrupt_and_pdbs_block_candidates() -> None:
    pool = nodepool()
    pinned = candidate(
        "p", "m6i.large", [workload("w", "p", annotations={"karpenter.sh/do-not-disrupt": "true"})], pool
    )
    assert blocked_reason(pinned, [], []) == 'pod "default/w" has "karpenter.sh/do-not-disrupt" annotation'
    pods = [workload("w1", "a"), workload("w2", "b")]
    pdb = {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
    }
    assert pdb_disruptions_allowed(pdb, pods) == 0
    guarded = candidate("a", "m6i.large", [pods[0]], pool)
    assert blocked_reason(guarded, [pdb], pods) == 'pdb "default/web" prevents pod evictions'
    relaxed = {**pdb, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}}
    assert pdb_disruptions_allowed(relaxed, pods) == 1 and blocked_reason(guarded, [relaxed], pods) is None
