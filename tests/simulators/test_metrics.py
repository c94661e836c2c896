"""``/metrics`` uses vLLM's names and labels, parses as Prometheus text, and moves with the traffic."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections.abc import Callable

import openai

MODEL = "sim-model"
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$")


def scrape(url: str) -> dict[tuple[str, str], float]:
    """``{(name, labels): value}``; fails on any line that is not valid exposition text."""
    with urllib.request.urlopen(url + "/metrics") as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    samples: dict[tuple[str, str], float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("# HELP "):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        name, labels, value = match.groups()
        family = re.sub(r"_(bucket|count|sum|created)$", "", name)
        assert name in typed or family in typed, f"{name} has no # TYPE line"
        samples[(name, labels or "")] = float(value)
    return samples


def value(samples: dict[tuple[str, str], float], name: str, **labels: str) -> float:
    wanted = {"model_name": MODEL, "engine": "0", **labels}
    for (n, raw), v in samples.items():
        got = dict(re.findall(r'(\w+)="([^"]*)"', raw))
        if n == name and got == wanted:
            return v
    raise AssertionError(f"no sample {name}{wanted}")


def chat(url: str, max_tokens: int, content: str = "hello there") -> openai.types.chat.ChatCompletion:
    c = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    return c.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": content}],
        max_tokens=max_tokens,
        extra_body={"ignore_eos": True},
    )


def test_names_labels_and_counters_move(start_sim: Callable[..., str]) -> None:
    url = start_sim()
    before = scrape(url)
    assert value(before, "vllm:num_requests_running") == 0
    assert value(before, "vllm:num_requests_waiting") == 0
    assert value(before, "vllm:kv_cache_usage_perc") == 0
    assert value(before, "vllm:generation_tokens_total") == 0
    r1, r2 = chat(url, 5), chat(url, 5)
    after = scrape(url)
    prompt = r1.usage.prompt_tokens + r2.usage.prompt_tokens
    assert value(after, "vllm:prompt_tokens_total") == prompt
    assert value(after, "vllm:generation_tokens_total") == 10
    assert value(after, "vllm:request_success_total", finished_reason="length") == 2
    assert value(after, "vllm:time_to_first_token_seconds_count") == 2
    assert value(after, "vllm:inter_token_latency_seconds_count") == 8
    assert value(after, "vllm:e2e_request_latency_seconds_count") == 2
    assert value(after, "vllm:request_generation_tokens_sum") == 10
    assert value(after, "vllm:iteration_tokens_total_count") >= 5
    # Buckets are cumulative and end at the count.
    buckets = [v for (n, labels), v in after.items() if n == "vllm:time_to_first_token_seconds_bucket"]
    assert buckets == sorted(buckets)
    assert value(after, "vllm:time_to_first_token_seconds_bucket", le="+Inf") == 2
    # Deprecated names stay hidden unless asked for, as in vLLM 0.12.
    assert not any(n.startswith("vllm:time_per_output_token_seconds") for n, _ in after)
    assert not any(n.startswith("vllm:gpu_cache_usage_perc") for n, _ in after)


def test_hidden_metrics_on_request(start_sim: Callable[..., str]) -> None:
    url = start_sim(show_hidden_metrics=True)
    chat(url, 3)
    assert value(scrape(url), "vllm:time_per_output_token_seconds_count") == 2


def test_waiting_requests_show_when_the_kv_cache_is_full(start_sim: Callable[..., str], fake_perf: type) -> None:
    # 256 KV tokens; each request holds ~100 prompt + 100 output tokens, so about one runs at a time.
    url = start_sim(perf=fake_perf(kv_cache_tokens=256, decode_base=0.01), max_model_len=256, time_scale=20)
    results: list[int] = []

    def one() -> None:
        results.append(chat(url, 100, content="word " * 90).usage.completion_tokens)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    seen_waiting, seen_usage = 0.0, 0.0
    deadline = time.monotonic() + 10
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        samples = scrape(url)
        seen_waiting = max(seen_waiting, value(samples, "vllm:num_requests_waiting"))
        seen_usage = max(seen_usage, value(samples, "vllm:kv_cache_usage_perc"))
        time.sleep(0.005)
    for t in threads:
        t.join()
    assert results == [100] * 4
    assert seen_waiting >= 1
    assert seen_usage > 0.5
    assert value(scrape(url), "vllm:num_requests_waiting") == 0


def test_a_client_leaving_aborts_its_request(start_sim: Callable[..., str]) -> None:
    url = start_sim()
    c = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    stream = c.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=3000, stream=True
    )
    next(iter(stream))
    stream.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        samples = scrape(url)
        if value(samples, "vllm:request_success_total", finished_reason="abort") == 1:
            break
        time.sleep(0.01)
    assert value(samples, "vllm:request_success_total", finished_reason="abort") == 1
    assert value(samples, "vllm:num_requests_running") == 0
    assert value(samples, "vllm:kv_cache_usage_perc") == 0
