"""Every instance type the kit launches or lists has a price, from one table, live and fallback.

The planner's catalog is the kit's one price table: the embedded Pricing API and spot price
history serve it, :mod:`labkit.aws.prices` falls back to it, and the embedded Karpenter prices its
offerings from it. A type that some part of the kit launches (Week 1's system nodes, Week 3's GPU
pool, whatever the embedded Karpenter or Auto Mode's built-in pools pick) must be priced by all of
them, or the cost meter shows "price unknown".
"""

from __future__ import annotations

from typing import Any

import pytest

from labkit import planner
from labkit.aws import eks, prices
from labkit.cluster import planning
from labkit.compute.nodepools import GpuPool
from labkit.embedded.aws import catalog as aws_catalog
from labkit.embedded.kube.karpenter import catalog as karpenter_catalog
from labkit.embedded.kube.karpenter.nodepool import Pool, builtin_nodepools
from labkit.embedded.kube.karpenter.provisioner import instance_options


def _auto_mode_builtin_types() -> dict[str, str]:
    """Instance types EKS Auto Mode's built-in pools may launch in the embedded twin -> pool name."""
    options = instance_options(karpenter_catalog.offerings(), "auto")
    found: dict[str, str] = {}
    for obj in builtin_nodepools():
        pool = Pool.from_nodepool(obj)
        for opt in options:
            if opt.requirements.intersects(pool.requirements) is None and opt.has_offering(pool.requirements):
                found.setdefault(opt.name, f"Auto Mode built-in pool {pool.name}")
    return found


def _launched_or_listed() -> dict[str, str]:
    """Every instance type some part of the kit launches or lists -> where it comes from."""
    found: dict[str, str] = {}
    for profile in ("auto", "standard"):
        for planned in planning.planned_launches(profile):
            found.setdefault(planned.launch.instance_type, f"Week {planned.week} plan ({profile})")
    for name in eks.SYSTEM_INSTANCE_TYPES:
        found.setdefault(name, "standard profile's system node group")
    for offering in karpenter_catalog.offerings():
        found.setdefault(offering.name, "embedded Karpenter offering")
    for name, where in _auto_mode_builtin_types().items():
        found.setdefault(name, where)
    return found


LAUNCHED = _launched_or_listed()


def test_the_list_holds_what_week1_and_week3_launch() -> None:
    auto = _auto_mode_builtin_types()
    assert {"c6i.large", "m7i.large", "m7g.large"} <= set(auto), "Auto Mode's C/M/R pools, amd64 and arm64"
    assert not any(name.startswith(("g", "p", "t")) for name in auto), "built-in pools are C/M/R only"
    assert {"g6.xlarge", "g6e.xlarge", "m7i.large"} <= set(LAUNCHED)
    assert len(LAUNCHED) >= 60, "every priced type of the catalog is a Karpenter offering"


@pytest.mark.parametrize("instance_type", sorted(LAUNCHED))
def test_every_launched_type_has_one_price_everywhere(instance_type: str) -> None:
    listed = planner.get_ec2_instance_type(instance_type).price_per_hour
    assert listed is not None and listed > 0, f"{instance_type} ({LAUNCHED[instance_type]}) has no on-demand price"
    ratio = planner.spot_ratio(instance_type)
    on_demand = prices.fallback_price(instance_type, "us-west-2")
    spot = prices.fallback_price(instance_type, "us-west-2", prices.SPOT)
    assert on_demand is not None and on_demand.usd_per_hour == listed
    assert spot is not None and spot.usd_per_hour == pytest.approx(listed * ratio, abs=1e-6)
    served = aws_catalog.prices()["instances"][instance_type]
    assert (served["on_demand"], served["spot_ratio"]) == (listed, ratio)
    info = karpenter_catalog.get(instance_type)
    assert info.price == listed
    assert karpenter_catalog.spot_price(info, "us-west-2a") == pytest.approx(listed * ratio, rel=1e-4)


def test_week3_gpu_pool_families_are_priced() -> None:
    for family in GpuPool().families:
        priced = [it for it in planner.instance_types() if it.family == family and it.price_per_hour is not None]
        assert priced, family
        assert 0 < planner.spot_ratio(family) < 1


def test_the_cost_meter_gets_live_prices_for_every_launched_type(session: Any) -> None:
    # The embedded Pricing API and spot price history answer for each type: the meter never falls back.
    for instance_type in sorted(LAUNCHED):
        on_demand = prices.on_demand(session, instance_type, use_cache=False)
        assert on_demand.source == "pricing-api", (instance_type, on_demand.note)
        assert on_demand.usd_per_hour == planner.get_ec2_instance_type(instance_type).price_per_hour
        assert on_demand.as_of == planner.price_table()["price_date"]
        spot = prices.spot(session, instance_type, use_cache=False)
        assert spot.source == "spot-history", (instance_type, spot.note)
        assert spot.usd_per_hour < on_demand.usd_per_hour
