"""Fast mode: fixed TTFT and inter-token delay, ``sim_sent_ns`` on every event, and a lean HTTP/1.1 server."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Callable

import openai
import pytest

MODEL = "sim-model"


def body(max_tokens: int, **extra: object) -> bytes:
    return json.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": max_tokens,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
            **extra,
        }
    ).encode()


def post(path: str, payload: bytes, rid: str = "t-1", version: str = "1.1", extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/{version}\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nX-Request-ID: {rid}\r\n{extra}\r\n"
    ).encode() + payload


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Reader:
    """Reads HTTP/1.1 responses (chunked or Content-Length) off a socket, stamping each chunk on arrival."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf = sock, b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        self.buf += data

    def _until(self, sep: bytes) -> bytes:
        while sep not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(sep, 1)
        return head

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self) -> tuple[int, dict[str, str], list[tuple[int, bytes]]]:
        """(status, headers, [(receive ns, chunk)])."""
        head = self._until(b"\r\n\r\n").decode()
        status = int(head.split(" ", 2)[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head.split("\r\n")[1:])}
        chunks: list[tuple[int, bytes]] = []
        if headers.get("transfer-encoding") == "chunked":
            while True:
                size = int(self._until(b"\r\n"), 16)
                if size == 0:
                    self._exactly(2)
                    break
                data = self._exactly(size + 2)[:-2]
                chunks.append((time.monotonic_ns(), data))
        elif "content-length" in headers:
            chunks.append((time.monotonic_ns(), self._exactly(int(headers["content-length"]))))
        else:  # close-delimited
            while True:
                try:
                    self._fill()
                except ConnectionError:
                    break
            data, self.buf = self.buf, b""
            chunks.append((time.monotonic_ns(), data))
        return status, headers, chunks


def events(chunks: list[tuple[int, bytes]]) -> list[tuple[int, dict | str]]:
    out: list[tuple[int, dict | str]] = []
    for received, data in chunks:
        for part in data.split(b"\n\n"):
            if part.startswith(b"data: {"):
                out.append((received, json.loads(part[6:])))
            elif part:
                out.append((received, part.decode()))
    return out


def test_every_event_is_stamped_with_its_send_time(start_sim: Callable[..., str]) -> None:
    url = start_sim(fast=True, ttft_ms=20, itl_ms=3)
    sock = connect(url)
    sent = time.monotonic_ns()
    sock.sendall(post("/v1/chat/completions", body(16), rid="stamp-1"))
    status, headers, chunks = Reader(sock).response()
    assert status == 200
    assert headers["x-request-id"] == "stamp-1"
    evs = events(chunks)
    assert evs[-1][1] == "data: [DONE]"
    stamped = [(received, e) for received, e in evs if isinstance(e, dict)]
    assert len(stamped) == 1 + 16 + 1  # role, one chunk per token, usage
    stamps = [e["sim_sent_ns"] for _, e in stamped]
    assert stamps == sorted(stamps)
    assert all(sent < s <= received for s, (received, _) in zip(stamps, stamped, strict=True))
    assert all(e["id"] == "chatcmpl-stamp-1" for _, e in stamped)
    # TTFT and inter-token delays are kept on absolute deadlines: no event leaves more than the
    # 0.25 ms timer allowance before its time (a late one is not made up for by delaying the rest).
    content = stamps[1:17]
    for k, stamp in enumerate(content):
        assert stamp - sent >= 20e6 + k * 3e6 - 0.3e6
    assert (content[-1] - content[0]) / 15 == pytest.approx(3e6, rel=0.25)
    assert stamped[-1][1]["usage"] == {"prompt_tokens": 10, "total_tokens": 26, "completion_tokens": 16}
    sock.close()


def test_tokens_per_chunk_and_keep_alive(start_sim: Callable[..., str]) -> None:
    url = start_sim(fast=True, tokens_per_chunk=4)
    sock = connect(url)
    reader = Reader(sock)
    for rid in ("a", "b"):  # two requests on one connection
        sock.sendall(post("/v1/chat/completions", body(10), rid=rid))
        status, headers, chunks = reader.response()
        assert status == 200
        assert headers["x-request-id"] == rid
        content = [e for _, e in events(chunks) if isinstance(e, dict) and e["choices"]][1:]
        assert [len(e["choices"][0]["delta"]["content"].split()) for e in content] == [4, 4, 2]
        assert content[-1]["choices"][0]["finish_reason"] == "length"
    sock.close()


def test_pipelined_requests_are_answered_in_order(start_sim: Callable[..., str]) -> None:
    url = start_sim(fast=True, itl_ms=1)
    sock = connect(url)
    sock.sendall(post("/v1/chat/completions", body(3), rid="p1") + post("/v1/completions", b'{"prompt":"x"}', rid="p2"))
    reader = Reader(sock)
    first, second = reader.response(), reader.response()
    assert first[1]["x-request-id"] == "p1"
    assert events(first[2])[-1][1] == "data: [DONE]"
    assert second[1]["x-request-id"] == "p2"
    assert json.loads(second[2][0][1])["usage"]["completion_tokens"] == 16  # completions' default max_tokens
    sock.close()


def test_http_1_0_gets_a_close_delimited_stream(start_sim: Callable[..., str]) -> None:
    sock = connect(start_sim(fast=True))
    sock.sendall(post("/v1/chat/completions", body(2), version="1.0"))
    status, headers, chunks = Reader(sock).response()
    assert status == 200
    assert headers["connection"] == "close"
    assert chunks[0][1].endswith(b"data: [DONE]\n\n")
    sock.close()


def test_protocol_errors(start_sim: Callable[..., str]) -> None:
    url = start_sim(fast=True)
    sock = connect(url)
    reader = Reader(sock)
    sock.sendall(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reader.response()[0] == 404
    sock.sendall(b"GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reader.response()[0] == 405
    sock.sendall(post("/v1/chat/completions", b"{not json"))
    status, _, chunks = reader.response()
    assert status == 400
    assert json.loads(chunks[0][1])["error"]["type"] == "BadRequestError"
    # Expect: 100-continue is honoured before the body is sent.
    payload = body(1)
    head = post("/v1/chat/completions", payload, extra="Expect: 100-continue\r\n")[: -len(payload)]
    sock.sendall(head)
    assert reader._until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue"
    sock.sendall(payload)
    assert reader.response()[0] == 200
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert reader.response()[0] == 411
    sock.close()


def test_openai_client_and_metrics_in_fast_mode(start_sim: Callable[..., str]) -> None:
    url = start_sim(fast=True, ttft_ms=1, itl_ms=0.5)
    c = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    assert [m.id for m in c.models.list().data] == [MODEL]
    r = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert r.usage.completion_tokens == 4
    chunks = list(
        c.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=4,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].usage.completion_tokens == 4
    assert chunks[1].model_extra["sim_sent_ns"] > 0
    with urllib.request.urlopen(url + "/metrics") as resp:
        text = resp.read().decode()
    assert 'vllm:generation_tokens_total{model_name="sim-model",engine="0"} 8.0' in text
    assert 'vllm:request_success_total{model_name="sim-model",engine="0",finished_reason="length"} 2.0' in text
    with urllib.request.urlopen(url + "/health") as resp:
        assert resp.status == 200


def test_a_client_leaving_mid_stream_is_counted_as_abort(start_sim: Callable[..., str]) -> None:
    url = start_sim(fast=True, itl_ms=20)
    sock = connect(url)
    sock.sendall(post("/v1/chat/completions", body(50)))
    sock.recv(100)
    sock.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url + "/metrics") as resp:
            text = resp.read().decode()
        if 'finished_reason="abort"} 1.0' in text:
            break
        time.sleep(0.02)
    assert 'vllm:num_requests_running{model_name="sim-model",engine="0"} 0.0' in text
    assert 'finished_reason="abort"} 1.0' in text


def test_request_log_names_the_x_request_id_when_asked(start_sim: Callable[..., str]) -> None:
    lines: list[str] = []
    url = start_sim(fast=True, log_requests=True, log_sink=lines.append)
    sock = connect(url)
    sock.sendall(post("/v1/chat/completions", body(2), rid="logged-1"))
    assert Reader(sock).response()[0] == 200
    sock.close()
    assert any("Received request chatcmpl-logged-1" in line and "X-Request-ID: logged-1" in line for line in lines)
    assert any('"POST /v1/chat/completions HTTP/1.1" 200 OK' in line for line in lines)
