"""Spot price history: a deterministic series per instance type and Availability Zone.

Prices move every six simulated hours around ``spot_ratio`` x on-demand from the price
list (:func:`labkit.embedded.aws.catalog.prices`: the planner's on-demand prices and typical
spot discounts), differently in each AZ, so "cheapest AZ" and "price now" questions have
answers that look like real ones. Instance types without an on-demand price have no history.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from labkit.embedded.aws import catalog

STEP_S = 6 * 3600
HISTORY_STEPS = 4 * 7  # one week of history
SWING = 0.12  # +-12 % around the typical spot price
PRODUCTS = {"Linux/UNIX": 0.0, "Linux/UNIX (Amazon VPC)": 0.0, "Windows": 1.0, "Windows (Amazon VPC)": 1.0}
WINDOWS_PER_VCPU = 0.046


@dataclass(frozen=True)
class SpotPrice:
    instance_type: str
    availability_zone: str
    product_description: str
    price: float
    timestamp: float


def _wiggle(*parts: str) -> float:
    """A stable number in [-1, 1] for ``parts``."""
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") / 0xFFFFFFFF * 2 - 1


def zones_offering(account_id: str, region: str, instance_type: str) -> list[str]:
    """Availability Zones of ``region`` that offer ``instance_type`` (moto's offerings data)."""
    from moto.ec2.models import ec2_backends

    backend = ec2_backends[account_id][region]
    offerings = backend.describe_instance_type_offerings(
        location_type="availability-zone", filters={"instance-type": [instance_type]}
    )
    return sorted({o["Location"] for o in offerings})


def history(
    account_id: str,
    region: str,
    *,
    instance_types: list[str],
    products: list[str],
    zone: str | None,
    start: float | None,
    end: float | None,
    now: float,
) -> list[SpotPrice]:
    """Price records, newest first, in effect between ``start`` and ``end`` (both default to now)."""
    table = catalog.prices()["instances"]
    end = now if end is None else min(end, now)
    start = end if start is None else start
    latest_step = int(end // STEP_S) * STEP_S
    out: list[SpotPrice] = []
    for instance_type in instance_types or sorted(table):
        spec = table.get(instance_type)
        if spec is None:
            continue
        base = float(spec["on_demand"]) * float(spec["spot_ratio"])
        for az in zones_offering(account_id, region, instance_type):
            if zone and az != zone:
                continue
            for product in products or list(PRODUCTS):
                if product not in PRODUCTS:
                    continue
                extra = PRODUCTS[product] * WINDOWS_PER_VCPU * int(spec["vcpu"])
                for step in range(HISTORY_STEPS):
                    stamp = latest_step - step * STEP_S
                    price = base * (1 + SWING * _wiggle(instance_type, az, str(stamp))) + extra
                    out.append(SpotPrice(instance_type, az, product, round(price, 6), float(stamp)))
                    if stamp <= start:  # the record in effect at the start of the interval
                        break
    out.sort(key=lambda r: (-r.timestamp, r.instance_type, r.availability_zone, r.product_description))
    return out


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    text = value.replace("Z", "+00:00")
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def as_dict(record: SpotPrice) -> dict[str, Any]:
    return {
        "instanceType": record.instance_type,
        "productDescription": record.product_description,
        "spotPrice": f"{record.price:.6f}",
        "timestamp": iso(record.timestamp),
        "availabilityZone": record.availability_zone,
    }
