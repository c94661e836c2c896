"""Instance prices: on-demand from the Price List API, spot from EC2 spot price history.

Answers are cached on disk (``<home>/cache/prices-<target>.json``; a day for on-demand, an
hour for spot). When AWS cannot be asked, the kit's one price table answers: the
planner's catalog (:mod:`labkit.planner.catalog`: dated us-east-1 on-demand prices and a
typical spot discount per family). Every :class:`Price` says where it came from and of
when, so a lab can show a list price with its date rather than a bare number. Fees that
are not instances (EKS, NAT, load balancers) have their own dated table, ``data/fees.yaml``.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from labkit.aws.session import PRICING_REGION, AwsSession
from labkit.errors import LabkitError
from labkit.planner import catalog
from labkit.settings import Settings

FEES = Path(__file__).resolve().parent / "data" / "fees.yaml"
ON_DEMAND_TTL_S = 24 * 3600
SPOT_TTL_S = 3600
ON_DEMAND = "on-demand"
SPOT = "spot"

# Region code -> the Price List API's `location` attribute.
LOCATIONS = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
    "ca-central-1": "Canada (Central)",
    "ca-west-1": "Canada West (Calgary)",
    "sa-east-1": "South America (Sao Paulo)",
    "eu-central-1": "EU (Frankfurt)",
    "eu-central-2": "EU (Zurich)",
    "eu-west-1": "EU (Ireland)",
    "eu-west-2": "EU (London)",
    "eu-west-3": "EU (Paris)",
    "eu-north-1": "EU (Stockholm)",
    "eu-south-1": "EU (Milan)",
    "eu-south-2": "EU (Spain)",
    "ap-northeast-1": "Asia Pacific (Tokyo)",
    "ap-northeast-2": "Asia Pacific (Seoul)",
    "ap-northeast-3": "Asia Pacific (Osaka)",
    "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)",
    "ap-southeast-3": "Asia Pacific (Jakarta)",
    "ap-southeast-4": "Asia Pacific (Melbourne)",
    "ap-south-1": "Asia Pacific (Mumbai)",
    "ap-south-2": "Asia Pacific (Hyderabad)",
    "ap-east-1": "Asia Pacific (Hong Kong)",
    "me-south-1": "Middle East (Bahrain)",
    "me-central-1": "Middle East (UAE)",
    "il-central-1": "Israel (Tel Aviv)",
    "af-south-1": "Africa (Cape Town)",
    "us-gov-west-1": "AWS GovCloud (US-West)",
    "us-gov-east-1": "AWS GovCloud (US-East)",
}


@dataclass(frozen=True)
class Price:
    """An hourly price and its provenance.

    Attributes:
        instance_type: e.g. ``g6.xlarge``.
        region: the region it applies to.
        capacity_type: ``on-demand`` or ``spot``.
        usd_per_hour: the price.
        source: ``pricing-api``, ``spot-history`` or ``fallback`` (the kit's price table; ``cached ``
            prefixed when from disk).
        as_of: the date the number describes (ISO): for ``fallback``, the date of the kit's price table.
        note: why a fallback was used, or how the spot price was chosen.
    """

    instance_type: str
    region: str
    capacity_type: str
    usd_per_hour: float
    source: str
    as_of: str
    note: str = ""

    def describe(self) -> str:
        extra = f"; {self.note}" if self.note else ""
        return (
            f"{self.instance_type} {self.capacity_type} in {self.region}: ${self.usd_per_hour:.4f}/h "
            f"({self.source}, {self.as_of}{extra})"
        )


@functools.cache
def fallback_table() -> dict[str, Any]:
    """The instance prices the fallback uses, from the planner's catalog (read-only).

    Returns:
        ``as_of`` (date of the prices), ``source``, ``region`` (where they are list prices),
        ``exact_regions`` (regions that share them), ``spot_ratio_basis`` and ``instances``
        (name -> ``on_demand``, ``spot_ratio``) for every catalog type with an on-demand price.
    """
    meta = catalog.price_table()
    instances = {
        it.name: {"on_demand": it.price_per_hour, "spot_ratio": catalog.spot_ratio(it.name)}
        for it in catalog.ec2_instance_types()
        if it.price_per_hour is not None
    }
    return {
        "as_of": str(meta["price_date"]),
        "source": str(meta["source"]),
        "region": str(meta["region"]),
        "exact_regions": list(meta["same_price_regions"]),
        "spot_ratio_basis": str(meta["spot_ratio_basis"]),
        "instances": instances,
    }


@functools.cache
def fee_table() -> dict[str, Any]:
    """The dated table of fees that are not instances (read-only): ``as_of``, ``source``, ``fees``."""
    with open(FEES) as handle:
        return dict(yaml.safe_load(handle))


def fees() -> dict[str, float]:
    """Hourly fees that are not instances (EKS control plane, NAT, load balancers, Auto Mode share)."""
    return {k: float(v) for k, v in fee_table()["fees"].items()}


def fallback_price(instance_type: str, region: str, capacity_type: str = ON_DEMAND, note: str = "") -> Price | None:
    """The kit's price for the type (the planner's catalog), or ``None`` if it has none (pure).

    On-demand: the catalog's us-east-1 list price. Spot: that times the family's typical spot
    discount. ``note`` is kept and extended with how the number was made.
    """
    table = fallback_table()
    entry = table["instances"].get(instance_type.strip().lower())
    if entry is None:
        return None
    value = float(entry["on_demand"])
    if capacity_type == SPOT:
        value *= float(entry["spot_ratio"])
        note = "; ".join(filter(None, [note, f"typical spot price ({entry['spot_ratio']:.0%} of on-demand)"]))
    if region not in table["exact_regions"]:
        note = "; ".join(filter(None, [note, f"{table['region']} list price, approximate here"]))
    return Price(instance_type, region, capacity_type, round(value, 6), "fallback", table["as_of"], note)


def product_filters(instance_type: str, region: str) -> list[dict[str, str]]:
    """GetProducts filters that select the one Linux, shared-tenancy, on-demand product (pure)."""
    where = (
        {"Type": "TERM_MATCH", "Field": "location", "Value": LOCATIONS[region]}
        if region in LOCATIONS
        else {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}
    )
    return [
        {"Type": "TERM_MATCH", "Field": "instanceType", "Value": instance_type},
        where,
        {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
        {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
        {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
        {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
    ]


def parse_on_demand(price_list: list[str | dict[str, Any]]) -> tuple[float, str] | None:
    """(USD per hour, effective date) from GetProducts' price list items (pure)."""
    for raw in price_list:
        item = json.loads(raw) if isinstance(raw, str) else raw
        for term in (item.get("terms", {}).get("OnDemand") or {}).values():
            for dimension in (term.get("priceDimensions") or {}).values():
                usd = dimension.get("pricePerUnit", {}).get("USD")
                if dimension.get("unit") == "Hrs" and usd is not None and float(usd) > 0:
                    return float(usd), str(term.get("effectiveDate", ""))[:10]
    return None


def latest_spot(history: list[dict[str, Any]]) -> dict[str, float]:
    """The most recent spot price per Availability Zone from DescribeSpotPriceHistory items (pure)."""
    latest: dict[str, tuple[Any, float]] = {}
    for record in history:
        zone, stamp, value = record["AvailabilityZone"], record["Timestamp"], float(record["SpotPrice"])
        if zone not in latest or stamp > latest[zone][0]:
            latest[zone] = (stamp, value)
    return {zone: value for zone, (_, value) in latest.items()}


class PriceCache:
    """A small JSON file of prices with a time-to-live per entry."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_settings(cls, settings: Settings) -> PriceCache:
        """One cache per target: the embedded AWS's prices must never answer for a real account."""
        return cls(settings.home / "cache" / f"prices-{settings.target}.json")

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str, ttl_s: float) -> Price | None:
        entry = self._read().get(key)
        if not isinstance(entry, dict) or time.time() - float(entry.get("stored", 0)) > ttl_s:
            return None
        try:
            return Price(**entry["price"])
        except (TypeError, KeyError):
            return None

    def put(self, key: str, price: Price) -> None:
        data = self._read()
        data[key] = {"stored": time.time(), "price": asdict(price)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(self.path)


def _cached(price: Price) -> Price:
    return Price(**{**asdict(price), "source": f"cached {price.source}"})


def _fallback_or_raise(instance_type: str, region: str, capacity_type: str, note: str) -> Price:
    """The fallback table's price when the live source gave none (``note`` says why)."""
    fallback = fallback_price(instance_type, region, capacity_type, note)
    if fallback is None:
        raise LabkitError(
            f"no {capacity_type} price for {instance_type} in {region}: {note}",
            "check the instance type's name, or give the price yourself",
        )
    return fallback


def on_demand(session: AwsSession, instance_type: str, *, region: str | None = None, use_cache: bool = True) -> Price:
    """The on-demand Linux price; Price List API first, then the fallback table.

    Raises :class:`~labkit.errors.LabkitError` only when neither knows the type.
    """
    region = region or session.region
    cache = PriceCache.for_settings(session.settings)
    key = f"{ON_DEMAND}/{region}/{instance_type}"
    if use_cache and (hit := cache.get(key, ON_DEMAND_TTL_S)) is not None:
        return _cached(hit)
    note = ""
    try:
        result = session.call(
            "pricing",
            "get_products",
            region=PRICING_REGION,
            ServiceCode="AmazonEC2",
            Filters=product_filters(instance_type, region),
            FormatVersion="aws_v1",
            MaxResults=10,
        )
        parsed = parse_on_demand(result.get("PriceList", []))
        if parsed is not None:
            found = Price(instance_type, region, ON_DEMAND, parsed[0], "pricing-api", parsed[1] or _today())
            cache.put(key, found)
            return found
        note = "the Price List API has no entry for it"
    except LabkitError as exc:
        note = f"Price List API unavailable ({exc.what})"
    return _fallback_or_raise(instance_type, region, ON_DEMAND, note)


def spot(session: AwsSession, instance_type: str, *, region: str | None = None, use_cache: bool = True) -> Price:
    """The current Linux spot price in the cheapest Availability Zone; spot history first, then the fallback."""
    region = region or session.region
    cache = PriceCache.for_settings(session.settings)
    key = f"{SPOT}/{region}/{instance_type}"
    if use_cache and (hit := cache.get(key, SPOT_TTL_S)) is not None:
        return _cached(hit)
    note = ""
    try:
        history = session.pages(
            "ec2",
            "describe_spot_price_history",
            "SpotPriceHistory",
            region=region,
            InstanceTypes=[instance_type],
            ProductDescriptions=["Linux/UNIX"],
            StartTime=dt.datetime.now(dt.UTC),
        )
        by_zone = latest_spot(history)
        if by_zone:
            zone = min(by_zone, key=lambda z: by_zone[z])
            found = Price(
                instance_type,
                region,
                SPOT,
                by_zone[zone],
                "spot-history",
                _today(),
                f"cheapest of {len(by_zone)} zones ({zone}); spot prices change hourly",
            )
            cache.put(key, found)
            return found
        note = "no spot price history for it here"
    except LabkitError as exc:
        note = f"spot price history unavailable ({exc.what})"
    return _fallback_or_raise(instance_type, region, SPOT, note)


def price(session: AwsSession, instance_type: str, capacity_type: str = ON_DEMAND) -> Price:
    return spot(session, instance_type) if capacity_type == SPOT else on_demand(session, instance_type)


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()
