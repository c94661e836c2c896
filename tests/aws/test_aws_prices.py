"""Prices: Pricing API and spot history first, cached, and a dated fallback that says so."""

from __future__ import annotations

import datetime as dt
import json
import socket
from typing import Any

import pytest

from labkit import planner
from labkit.aws import prices
from labkit.aws import session as session_mod
from labkit.embedded.aws import EmbeddedAws
from labkit.errors import LabkitError


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_product_filters_use_the_location_name() -> None:
    filters = {f["Field"]: f["Value"] for f in prices.product_filters("g6.xlarge", "eu-central-1")}
    assert filters == {
        "instanceType": "g6.xlarge",
        "location": "EU (Frankfurt)",
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
    }
    assert {f["Field"] for f in prices.product_filters("g6.xlarge", "xx-nowhere-9")} >= {"regionCode"}


def test_parse_on_demand_reads_the_price_dimension() -> None:
    item = {
        "terms": {
            "OnDemand": {
                "S.T": {
                    "effectiveDate": "2025-06-01T00:00:00Z",
                    "priceDimensions": {"S.T.R": {"unit": "Hrs", "pricePerUnit": {"USD": "1.8610000000"}}},
                }
            }
        }
    }
    assert prices.parse_on_demand([json.dumps(item)]) == (1.861, "2025-06-01")
    assert prices.parse_on_demand([]) is None


def test_on_demand_from_the_price_list_api_then_the_cache(session: Any, embedded_aws: EmbeddedAws) -> None:
    found = prices.on_demand(session, "g6e.xlarge")
    assert found.source == "pricing-api"
    assert found.usd_per_hour == embedded_aws.price_table()["instances"]["g6e.xlarge"]["on_demand"]
    assert found.as_of == embedded_aws.price_table()["as_of"], "the effective date of the price list"
    again = prices.on_demand(session, "g6e.xlarge")
    assert again.source == "cached pricing-api"
    assert again.usd_per_hour == found.usd_per_hour
    cache = json.loads(prices.PriceCache.for_settings(session.settings).path.read_text())
    assert "on-demand/us-west-2/g6e.xlarge" in cache


def test_on_demand_falls_back_with_date_and_reason(session: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_PRICING", _closed_port_url())
    monkeypatch.setattr(session_mod, "MAX_ATTEMPTS", 1)
    found = prices.on_demand(session, "p5.48xlarge", use_cache=False)
    table = prices.fallback_table()
    assert found.source == "fallback"
    assert found.as_of == table["as_of"]
    assert found.usd_per_hour == table["instances"]["p5.48xlarge"]["on_demand"]
    assert "Price List API unavailable" in found.note
    assert table["as_of"] in found.describe()
    with pytest.raises(LabkitError, match=r"no on-demand price for z9\.huge"):
        prices.on_demand(session, "z9.huge", use_cache=False)


def test_fallback_prices_are_the_planner_catalog_with_its_date() -> None:
    meta = planner.price_table()
    for name in ("c6i.large", "m7i.large", "g6e.xlarge"):
        listed = planner.get_ec2_instance_type(name).price_per_hour
        on_demand = prices.fallback_price(name, "us-east-1")
        spot = prices.fallback_price(name, "us-east-1", "spot")
        assert on_demand is not None and spot is not None
        assert (on_demand.usd_per_hour, on_demand.source, on_demand.as_of) == (listed, "fallback", meta["price_date"])
        assert spot.usd_per_hour == pytest.approx(listed * planner.spot_ratio(name))
        assert spot.as_of == meta["price_date"]
    assert prices.fallback_price("p5e.48xlarge", "us-east-1") is None, "Capacity Blocks only: no on-demand price"
    assert prices.fallback_price("z9.huge", "us-east-1") is None


def test_fees_have_their_own_dated_table() -> None:
    table = prices.fee_table()
    dt.date.fromisoformat(table["as_of"])
    assert "eks/pricing" in table["source"]
    assert set(table) == {"as_of", "source", "fees"}, "instance prices live in the planner's catalog only"
    assert prices.fees()["eks_cluster_standard"] == 0.10
    assert 0 < prices.fees()["auto_mode_fraction"] < 1


def test_fallback_marks_other_regions_approximate() -> None:
    assert prices.fallback_price("g6.xlarge", "us-west-2").note == ""
    assert "approximate" in prices.fallback_price("g6.xlarge", "eu-west-1").note
    spot = prices.fallback_price("g6.xlarge", "us-east-1", "spot")
    assert spot.usd_per_hour == pytest.approx(0.8048 * 0.45)
    assert "typical spot price" in spot.note


def test_spot_from_history_is_the_cheapest_zone(session: Any) -> None:
    found = prices.spot(session, "g5.xlarge")
    history = session.pages(
        "ec2",
        "describe_spot_price_history",
        "SpotPriceHistory",
        InstanceTypes=["g5.xlarge"],
        ProductDescriptions=["Linux/UNIX"],
        StartTime=dt.datetime.now(dt.UTC),
    )
    assert found.source == "spot-history"
    assert found.usd_per_hour == min(float(h["SpotPrice"]) for h in history)
    assert found.usd_per_hour < prices.on_demand(session, "g5.xlarge").usd_per_hour
    assert "cheapest of" in found.note
    assert prices.spot(session, "g5.xlarge").source == "cached spot-history"


def test_spot_falls_back_when_there_is_no_history(session: Any) -> None:
    # eu-south-1 does not offer g6e.xlarge, so there is no history; the table still has a typical price
    found = prices.spot(session, "g6e.xlarge", region="eu-south-1", use_cache=False)
    assert found.source == "fallback"
    assert "no spot price history" in found.note


def test_latest_spot_per_zone() -> None:
    t0, t1 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    history = [
        {"AvailabilityZone": "a", "Timestamp": t0, "SpotPrice": "1.0"},
        {"AvailabilityZone": "a", "Timestamp": t1, "SpotPrice": "2.0"},
        {"AvailabilityZone": "b", "Timestamp": t0, "SpotPrice": "1.5"},
    ]
    assert prices.latest_spot(history) == {"a": 2.0, "b": 1.5}


def test_expired_cache_entries_are_ignored(tmp_path: Any) -> None:
    cache = prices.PriceCache(tmp_path / "prices.json")
    entry = prices.Price("g6.xlarge", "us-west-2", "spot", 0.3, "spot-history", "2025-06-01")
    cache.put("k", entry)
    assert cache.get("k", ttl_s=60) == entry
    assert cache.get("k", ttl_s=-1) is None
    (tmp_path / "prices.json").write_text("not json")
    assert cache.get("k", ttl_s=60) is None


def test_each_target_has_its_own_price_cache(tmp_path) -> None:
    from labkit import settings as settings_mod
    from labkit.aws.prices import PriceCache

    embedded = settings_mod.load({"target": "embedded", "home": tmp_path}, environ={}, use_files=False)
    eks = embedded.replace(target="eks")
    assert PriceCache.for_settings(embedded).path != PriceCache.for_settings(eks).path
