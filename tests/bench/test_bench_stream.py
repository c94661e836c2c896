"""Response framing on the hot path and parsing after the run, fed in every fragmentation."""

from __future__ import annotations

import json

import pytest

from labkit.bench.client import RawRecord, _Conn
from labkit.bench.stream import split_response, to_sample


def chunk(payload: bytes, ext: bytes = b"") -> bytes:
    return b"%x%s\r\n%s\r\n" % (len(payload), ext, payload)


def sse(obj: dict | str) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj)
    return f"data: {data}\n\n".encode()


def chat_event(content: str | None, completion: int | None = None, *, role: bool = False, stamp: int | None = None):
    delta: dict = {"role": "assistant"} if role else {}
    if content is not None:
        delta["content"] = content
    obj: dict = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
    if completion is not None:
        obj["usage"] = {"prompt_tokens": 9, "completion_tokens": completion}
    if stamp is not None:
        obj["sim_sent_ns"] = stamp
    return obj


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def stream_response(events: list[bytes], *, trailer: bytes = b"") -> bytes:
    return HEAD + b"".join(chunk(e) for e in events) + b"0\r\n" + trailer + b"\r\n"


class FakeEngine:
    poll_ns = 0

    def __init__(self) -> None:
        self.finished: list[tuple[RawRecord, int]] = []

    def _finish(self, conn: _Conn, rec: RawRecord, t: int) -> None:
        conn.rec = None
        self.finished.append((rec, t))

    def _lost(self, conn: _Conn, exc: Exception | None) -> None:
        pass


def feed(raw: bytes, sizes: int | list[int]) -> tuple[FakeEngine, int, int]:
    """Feed ``raw`` to a connection in pieces; returns (engine, reads, read index where it finished)."""
    engine = FakeEngine()
    conn = _Conn(engine)  # type: ignore[arg-type]
    conn.start(RawRecord(0, "r-0", b""))
    pieces = [raw[i : i + sizes] for i in range(0, len(raw), sizes)] if isinstance(sizes, int) else []
    if isinstance(sizes, list):
        pos = 0
        for n in sizes:
            pieces.append(raw[pos : pos + n])
            pos += n
    finished_at = -1
    for i, piece in enumerate(pieces):
        conn.data_received(piece)
        if engine.finished and finished_at < 0:
            finished_at = i
    return engine, len(pieces), finished_at


EVENTS = [
    sse(chat_event("", 0, role=True)),
    sse(chat_event("Hello", 1)),
    sse(chat_event(" world", 2)),
    sse({"object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}}),
    sse("[DONE]"),
]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, 64, 10_000])
def test_chunked_end_is_found_at_the_last_byte_whatever_the_fragmentation(size: int) -> None:
    raw = stream_response(EVENTS)
    engine, reads, finished_at = feed(raw, size)
    assert len(engine.finished) == 1
    assert finished_at == reads - 1


def test_trailers_and_chunk_extensions_are_handled() -> None:
    raw = HEAD + chunk(EVENTS[1], b";name=value") + b"0\r\nX-Trailer: yes\r\n\r\n"
    for size in (1, 5, 1000):
        _engine, reads, finished_at = feed(raw, size)
        assert finished_at == reads - 1


def test_content_length_response_ends_by_length() -> None:
    body = b'{"error": "nope"}'
    raw = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    _engine, reads, finished_at = feed(raw, 3)
    assert finished_at == reads - 1


def test_informational_head_is_skipped() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\n" + stream_response(EVENTS)
    _engine, reads, finished_at = feed(raw, 4)
    assert finished_at == reads - 1


def test_parse_assigns_each_event_the_time_of_the_read_that_completed_it() -> None:
    raw = stream_response(EVENTS)
    # Split the bytes in the middle of the second content event.
    cut = raw.index(b"world") + 2
    resp = split_response([1000, 2000], [raw[:cut], raw[cut:]])
    assert resp.status == 200
    assert resp.complete
    times = [e.t_ns for e in resp.events]
    assert times == [1000, 1000, 2000, 2000, 2000]
    assert resp.events[-1].done


def make_sample(raw: bytes, times_bufs: list[tuple[int, bytes]] | None = None, **kw):
    if times_bufs is None:
        times_bufs = [(5000, raw)]
    return to_sample(
        0,
        "r-0",
        scheduled_ns=0,
        ready_ns=0,
        sent_ns=1000,
        done_ns=times_bufs[-1][0],
        times=[t for t, _ in times_bufs],
        bufs=[b for _, b in times_bufs],
        client_error=kw.pop("client_error", None),
        **kw,
    )


def test_first_chunk_with_empty_content_does_not_count_for_ttft() -> None:
    events = [EVENTS[0], EVENTS[1], EVENTS[2], EVENTS[3], EVENTS[4]]
    parts = [
        HEAD + chunk(events[0]),
        chunk(events[1]),
        chunk(events[2]),
        chunk(events[3]) + chunk(events[4]) + b"0\r\n\r\n",
    ]
    s = make_sample(b"", list(zip([2000, 3000, 4000, 5000], parts, strict=True)))
    assert s.success, s.error
    assert s.chunk_ns == [3000, 4000]  # the role chunk at 2000 carried no content
    assert s.ttft_s == pytest.approx((3000 - 1000) / 1e9)
    assert s.output_tokens == 2
    assert s.input_tokens == 9
    assert s.chunk_tokens == [1, 1]
    assert s.events == 5


def test_cumulative_usage_gives_tokens_per_chunk() -> None:
    events = [sse(chat_event("a b", 2)), sse(chat_event("c d e", 5)), sse("[DONE]")]
    s = make_sample(stream_response(events))
    assert s.chunk_tokens == [2, 3]
    assert s.output_tokens == 5


def test_server_stamps_give_receive_delays() -> None:
    events = [sse(chat_event("x", 1, stamp=4000)), sse(chat_event("y", 2, stamp=4500)), sse("[DONE]")]
    s = make_sample(stream_response(events))
    assert s.server_delays_ns == [1000, 500]


def test_http_error_is_a_failure_with_the_status() -> None:
    body = b'{"object":"error","message":"model overloaded"}'
    raw = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    s = make_sample(raw)
    assert not s.success
    assert s.status == 503
    assert s.error.startswith("HTTP 503")


def test_error_event_in_the_stream_is_a_failure() -> None:
    events = [sse(chat_event("x", 1)), sse({"error": {"message": "engine died", "code": 500}}), sse("[DONE]")]
    s = make_sample(stream_response(events))
    assert not s.success
    assert s.error == "error event: engine died"


def test_broken_stream_is_a_failure() -> None:
    raw = stream_response(EVENTS)
    cut = raw[: raw.index(b"world")]
    s = make_sample(cut, client_error="connection closed before the response ended")
    assert not s.success
    assert "connection closed" in s.error


def test_stream_without_content_is_a_failure() -> None:
    s = make_sample(stream_response([EVENTS[0], EVENTS[3], EVENTS[4]]))
    assert not s.success
    assert s.error.startswith("no content")


def test_completions_api_reads_text() -> None:
    events = [sse({"choices": [{"index": 0, "text": "Hi"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}),
              sse("[DONE]")]  # fmt: skip
    assert make_sample(stream_response(events), api="completions").chunk_ns == [5000]
    assert make_sample(stream_response(events), api="chat").chunk_ns == []


def test_crlf_separated_events_are_split() -> None:
    body = b"data: " + json.dumps(chat_event("x", 1)).encode() + b"\r\n\r\ndata: [DONE]\r\n\r\n"
    s = make_sample(stream_response([body]))
    assert s.success
    assert len(s.chunk_ns) == 1


def test_non_streamed_json_counts_as_one_chunk() -> None:
    body = json.dumps(
        {
            "choices": [{"index": 0, "message": {"content": "Hi there"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        }
    ).encode()
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    s = make_sample(raw)
    assert s.success
    assert s.chunk_ns == [5000]
    assert s.output_tokens == 2
