"""The embedded AWS's data: the EC2 price list it serves, EC2 quotas, the EKS catalogue.

Quotas and the EKS catalogue are tables of their own (``data/*.yaml``). Instance prices are not:
the Pricing API and the spot price history serve the planner's catalog
(:mod:`labkit.planner.catalog`), the kit's one price table, so the embedded AWS, the fallback of
:mod:`labkit.aws.prices` and the embedded Karpenter agree on every number. Each table carries the
date it describes (``as_of``) and where its numbers come from (``source``), so a lab can show them
next to what the embedded APIs return.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from labkit.planner import catalog as planner

DATA_DIR = Path(__file__).resolve().parent / "data"

#: The price list's ``instanceFamily`` attribute per instance category (the family's first letter).
INSTANCE_FAMILIES = {
    "c": "Compute optimized",
    "g": "GPU instance",
    "m": "General purpose",
    "p": "GPU instance",
    "r": "Memory optimized",
    "t": "General purpose",
}


@functools.cache
def load(name: str) -> dict[str, Any]:
    """Read ``data/<name>.yaml`` (cached; treat the result as read-only)."""
    with open(DATA_DIR / f"{name}.yaml") as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"{name}.yaml must hold a mapping")
    return data


def _instance_row(it: planner.InstanceType | planner.CpuInstanceType, on_demand: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "on_demand": on_demand,
        "spot_ratio": planner.spot_ratio(it.name),
        "vcpu": it.vcpu,
        "memory_gib": it.memory_gib,
        "family": INSTANCE_FAMILIES.get(it.family[:1], "General purpose"),
    }
    if isinstance(it, planner.InstanceType):
        row.update({"gpus": it.gpu_count, "gpu": it.gpu, "gpu_memory_gib": int(it.gpu_spec.memory_gb)})
    return row


@functools.cache
def prices() -> dict[str, Any]:
    """The EC2 price list the embedded Pricing API and spot price history serve (cached; read-only).

    Every instance type of the planner's catalog with an on-demand price (GPU and CPU-only), at the
    catalog's us-east-1 list price, served in every region of ``data/price_regions.yaml``.

    Returns:
        ``as_of`` (date of the prices), ``source``, ``currency``, ``spot_ratio_basis``, ``instances``
        (name -> ``on_demand``, ``spot_ratio``, ``vcpu``, ``memory_gib``, ``family``, and for GPU types
        ``gpus``, ``gpu``, ``gpu_memory_gib``) and ``regions`` (code -> ``location``, ``usage_prefix``).
    """
    meta = planner.price_table()
    instances = {
        it.name: _instance_row(it, it.price_per_hour)
        for it in sorted(planner.ec2_instance_types(), key=lambda i: i.name)
        if it.price_per_hour is not None
    }
    return {
        "as_of": str(meta["price_date"]),
        "source": str(meta["source"]),
        "currency": str(meta["currency"]),
        "spot_ratio_basis": str(meta["spot_ratio_basis"]),
        "instances": instances,
        "regions": dict(load("price_regions")["regions"]),
    }


def quotas() -> dict[str, Any]:
    return load("quotas")


def eks() -> dict[str, Any]:
    return load("eks")
