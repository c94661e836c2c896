"""Benchmark the embedded Kubernetes API server through the official ``kubernetes`` client.

Reports start-up time (cold: new CA; warm: cached certificates), create / get / list latency
and watch-event latency (p50, p99, in milliseconds) and the process's resident memory, against
a fresh server with no controllers. Run it from the repository root::

    .venv/bin/python benchmarks/apiserver_bench.py            # HTTPS, as clients use it
    .venv/bin/python benchmarks/apiserver_bench.py --no-tls   # plain HTTP, for comparison
    .venv/bin/python benchmarks/apiserver_bench.py --json     # machine-readable

Definitions: a create or get latency is one call of the typed client (``create_namespaced_config_map``,
``read_namespaced_config_map``) from call to returned model, over a kept-alive connection; list
latency is one ``list_namespaced_config_map`` of ``--list-size`` objects (``_raw``: the same call without
building the client's models, i.e. server plus transport); watch-event latency is the
time from the start of a create call to the ADDED event arriving in a ``kubernetes.watch.Watch``
stream in another thread. RSS is VmRSS from /proc (the benchmark and the server share a process).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of ``values``, nearest rank."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {
        "p50_ms": round(pct(ms, 50), 3),
        "p99_ms": round(pct(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "n": len(ms),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--no-tls", action="store_true", help="serve plain HTTP")
    parser.add_argument("--n", type=int, default=500, help="creates and gets to time")
    parser.add_argument("--list-size", type=int, default=100, help="objects in the timed list")
    parser.add_argument("--watch-events", type=int, default=200, help="watch events to time")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)

    import_t0 = time.perf_counter()
    from kubernetes import client, config, watch

    from labkit.embedded.clock import Clock
    from labkit.embedded.kube.server import ApiServer
    from labkit.embedded.kube.store import Store

    import_s = time.perf_counter() - import_t0
    rss_before = rss_mib()
    results: dict = {"tls": not args.no_tls, "imports_s": round(import_s, 3)}

    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp:
        state = Path(tmp)
        clock = Clock(scale=1.0)
        # start-up: cold (generates the CA and serving certificate) and warm (reads them from state_dir)
        startups = []
        for _ in range(2):
            store = Store(clock)
            server = ApiServer(store, tls=not args.no_tls, state_dir=state)
            t0 = time.perf_counter()
            server.start()
            startups.append(time.perf_counter() - t0)
            server.stop()
        results["startup_cold_ms"] = round(startups[0] * 1000, 2)
        results["startup_warm_ms"] = round(startups[1] * 1000, 2)

        store = Store(clock)
        server = ApiServer(store, tls=not args.no_tls, state_dir=state)
        server.start()
        kubeconfig = server.write_kubeconfig(state / "kubeconfig")
        api_client = config.new_client_from_config(config_file=str(kubeconfig))
        core = client.CoreV1Api(api_client)
        core.create_namespace({"metadata": {"name": "bench"}})
        results["rss_after_start_mib"] = round(rss_mib(), 1)

        def cm(name: str) -> dict:
            return {"metadata": {"name": name, "labels": {"app": "bench"}}, "data": {"key": "value" * 8}}

        for i in range(50):  # warm up connections and code paths
            core.create_namespaced_config_map("bench", cm(f"warm-{i}"))
            core.read_namespaced_config_map(f"warm-{i}", "bench")

        creates, gets = [], []
        for i in range(args.n):
            t0 = time.perf_counter()
            core.create_namespaced_config_map("bench", cm(f"cm-{i}"))
            creates.append(time.perf_counter() - t0)
        for i in range(args.n):
            t0 = time.perf_counter()
            core.read_namespaced_config_map(f"cm-{i}", "bench")
            gets.append(time.perf_counter() - t0)
        results["create"] = summary(creates)
        results["get"] = summary(gets)

        core.create_namespace({"metadata": {"name": "bench-list"}})
        for i in range(args.list_size):
            core.create_namespaced_config_map("bench-list", cm(f"item-{i}"))
        lists, raw_lists = [], []
        for _ in range(50):
            t0 = time.perf_counter()
            core.list_namespaced_config_map("bench-list")
            lists.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            body = core.list_namespaced_config_map("bench-list", _preload_content=False).data
            raw_lists.append(time.perf_counter() - t0)
            assert body.startswith(b"{")
        results[f"list_{args.list_size}"] = summary(lists)
        results[f"list_{args.list_size}_raw"] = summary(raw_lists)

        # watch-event latency: create in this thread, receive in a watching thread
        core.create_namespace({"metadata": {"name": "bench-watch"}})
        rv = core.list_namespaced_config_map("bench-watch").metadata.resource_version
        sent: dict[str, float] = {}
        latencies: list[float] = []
        done = threading.Event()
        w = watch.Watch()

        def receive() -> None:
            for event in w.stream(core.list_namespaced_config_map, "bench-watch", resource_version=rv,
                                  timeout_seconds=120):  # fmt: skip
                name = event["object"].metadata.name
                if event["type"] == "ADDED" and name in sent:
                    latencies.append(time.perf_counter() - sent[name])
                    if len(latencies) >= args.watch_events:
                        break
            done.set()

        thread = threading.Thread(target=receive, daemon=True)
        thread.start()
        time.sleep(0.2)
        for i in range(args.watch_events):
            name = f"w-{i}"
            sent[name] = time.perf_counter()
            core.create_namespaced_config_map("bench-watch", cm(name))
            time.sleep(0.002)
        done.wait(30)
        w.stop()
        results["watch_event"] = summary(latencies) if latencies else {"n": 0}

        results["objects"] = args.n + 50 + args.list_size + args.watch_events
        results["rss_before_start_mib"] = round(rss_before, 1)
        results["rss_end_mib"] = round(rss_mib(), 1)
        api_client.close()
        server.stop()
        clock.stop()

    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"embedded API server ({'HTTPS' if results['tls'] else 'HTTP'}), official kubernetes client")
        print(f"  start-up: cold {results['startup_cold_ms']} ms, warm {results['startup_warm_ms']} ms")
        for key in ("create", "get", f"list_{args.list_size}", f"list_{args.list_size}_raw", "watch_event"):
            r = results[key]
            if r.get("n"):
                print(f"  {key:<14} p50 {r['p50_ms']:>7.3f} ms   p99 {r['p99_ms']:>7.3f} ms   (n={r['n']})")
        print(
            f"  RSS: {results['rss_before_start_mib']} MiB before start, {results['rss_after_start_mib']} MiB "
            f"after start, {results['rss_end_mib']} MiB with {results['objects']} objects"
        )
    return results


if __name__ == "__main__":
    main()
