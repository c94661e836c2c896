"""``python -m labkit.embedded.simulators.vllm`` prints its URL, serves, and stops on SIGTERM."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import urllib.request


def test_command_line_fast_mode() -> None:
    cmd = [sys.executable, "-m", "labkit.embedded.simulators.vllm", "--model", "cli-model", "--fast", "--port", "0",
           "--ttft-ms", "1", "--served-model-name", "served"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "no URL printed"
        assert proc.stdout is not None
        url = proc.stdout.readline().decode().strip()
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/v1/models") as resp:
            assert [m["id"] for m in json.loads(resp.read())["data"]] == ["served"]
        with urllib.request.urlopen(url + "/version") as resp:
            assert json.loads(resp.read())["version"]
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_command_line_rejects_a_bad_flag_value() -> None:
    cmd = [sys.executable, "-m", "labkit.embedded.simulators.vllm", "--model", "m", "--fast", "--tokens-per-chunk", "0"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert "tokens_per_chunk must be at least 1" in done.stderr
