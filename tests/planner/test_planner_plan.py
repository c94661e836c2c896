"""Cost per token and the cheapest instance that meets a latency SLO."""

from __future__ import annotations

import pytest

from labkit import planner
from labkit.errors import ConfigError
from labkit.planner import SLO, DoesNotFit, cheapest_instance


def test_cost_per_million_tokens_by_hand() -> None:
    # $1/h at 1000 output tokens/s: 3.6M tokens an hour, so $0.2778 per million.
    assert planner.cost_per_million_output_tokens(1.0, 1000) == pytest.approx(1 / 3.6)
    assert planner.cost_per_thousand_requests(3.6, 1.0) == pytest.approx(1.0)
    assert planner.cost_per_million_output_tokens(1.0, 0) == float("inf")


def test_relaxed_slo_picks_the_cheapest_gpu_instance() -> None:
    plan = cheapest_instance(
        "llama-3.1-8b", SLO(ttft_ms=2000, tpot_ms=100), prompt_tokens=512, output_tokens=256, concurrency=4
    )
    assert plan.best.instance_type.name == "g6.xlarge"  # the cheapest GPU instance that holds the model
    prices = [c.price_per_hour for c in plan.ranked]
    assert prices == sorted(prices)


def test_tight_tpot_rejects_the_l4_with_its_reason() -> None:
    plan = cheapest_instance(
        "llama-3.1-8b", SLO(ttft_ms=1000, tpot_ms=45), prompt_tokens=512, output_tokens=256, concurrency=4
    )
    reasons = {r.instance_type: r.reason for r in plan.rejected}
    assert "decode step" in reasons["g6.xlarge"] and "memory-bound" in reasons["g6.xlarge"]
    assert plan.best.instance_type.name == "g5.xlarge"
    assert plan.best.prediction.tpot_ms <= 45


def test_candidates_meet_the_slo_at_their_share_of_the_load() -> None:
    slo = SLO(ttft_ms=500, tpot_ms=50)
    plan = cheapest_instance("llama-3.1-8b", slo, prompt_tokens=1024, output_tokens=256, concurrency=32)
    for c in plan.ranked:
        assert slo.met_by(c.prediction)
        assert c.cost_per_million_output_tokens == pytest.approx(
            planner.cost_per_million_output_tokens(c.price_per_hour, c.prediction.output_throughput * c.replicas)
        )
    # More load than one A10G carries within the SLO: the plan uses several g5.xlarge.
    g5 = next(c for c in plan.ranked if c.instance_type.name == "g5.xlarge")
    assert g5.instances > 1


def test_seventy_b_rejections_say_why() -> None:
    plan = cheapest_instance(
        "llama-3.1-70b", SLO(ttft_ms=1000, tpot_ms=60), prompt_tokens=1024, output_tokens=256, rate=2.0
    )
    reasons = {r.instance_type: r.reason for r in plan.rejected}
    assert "does not fit" in reasons["g5.xlarge"] and "141 GB" in reasons["g5.xlarge"]
    assert "no on-demand price" in reasons["p5e.48xlarge"]
    assert plan.best.instance_type.gpu_count == 8
    assert plan.best.prediction.rate == pytest.approx(2.0)
    assert {row["instance_type"] for row in plan.rows()} == {it.name for it in planner.instance_types()}
    assert "g5.xlarge" in str(plan)


def test_impossible_slo_explains_itself() -> None:
    plan = cheapest_instance("llama-3.1-8b", SLO(tpot_ms=1), prompt_tokens=512, output_tokens=128, concurrency=1)
    assert not plan.ranked
    with pytest.raises(DoesNotFit, match=r"no instance type serves llama-3\.1-8b"):
        _ = plan.best


def test_load_must_be_concurrency_or_rate() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        cheapest_instance("llama-3.1-8b", SLO(tpot_ms=50))
    with pytest.raises(ConfigError, match="exactly one"):
        cheapest_instance("llama-3.1-8b", SLO(tpot_ms=50), concurrency=1, rate=1.0)


def test_candidates_can_be_restricted() -> None:
    plan = cheapest_instance(
        "qwen2.5-7b", SLO(ttft_ms=1000, tpot_ms=80), concurrency=8, candidates=["g6.xlarge", "g6e.xlarge"]
    )
    assert [c.instance_type.name for c in plan.ranked] == ["g6.xlarge", "g6e.xlarge"]
