"""Parse what the client recorded, after the run: HTTP head, chunked body, SSE events, JSON.

The client keeps each socket read with its receive time; here the reads are joined, the
chunked framing removed, and the body split into server-sent events. Each event gets the
receive time of the read that completed it (its last byte). Only what the metrics need is
taken from each event's JSON: whether it carries content, the ``usage`` counts, an error,
and the simulator's ``sim_sent_ns`` stamp.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from typing import Any

from labkit.bench.metrics import RequestSample


@dataclass
class Event:
    """One server-sent event: its receive time and the parsed JSON (``None`` for ``[DONE]``)."""

    t_ns: int
    data: Any
    done: bool = False


@dataclass
class Response:
    """A raw HTTP response split into head and events."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    body: bytes = b""
    body_t_ns: int = 0
    complete: bool = False
    problem: str | None = None


def _dechunk(raw: bytes, start: int) -> tuple[list[tuple[int, int, int]], bool]:
    """Chunk data spans ``(body_offset, raw_offset, length)`` from ``start``; and whether the last chunk came."""
    spans = []
    pos, body_off, n = start, 0, len(raw)
    while pos < n:
        eol = raw.find(b"\r\n", pos)
        if eol < 0:
            return spans, False
        try:
            size = int(raw[pos:eol].split(b";", 1)[0], 16)
        except ValueError:
            return spans, False
        if size == 0:
            return spans, True
        take = min(size, n - (eol + 2))
        spans.append((body_off, eol + 2, take))
        body_off += take
        if take < size:
            return spans, False
        pos = eol + 4 + size
    return spans, False


def split_response(times: list[int], bufs: list[bytes]) -> Response:
    """Parse one recorded response into its status, headers and timed SSE events."""
    raw = b"".join(bufs)
    ends = []
    acc = 0
    for b in bufs:
        acc += len(b)
        ends.append(acc)

    def time_at(raw_offset: int) -> int:
        i = bisect.bisect_right(ends, raw_offset)
        return times[min(i, len(times) - 1)]

    head_end = raw.find(b"\r\n\r\n")
    while head_end >= 0 and raw[9:10] == b"1" and raw.startswith(b"HTTP/"):  # skip 1xx heads
        raw_rest = raw[head_end + 4 :]
        shift = head_end + 4
        raw = raw_rest
        ends = [e - shift for e in ends]
        head_end = raw.find(b"\r\n\r\n")
    if head_end < 0:
        return Response(status=None, problem="no complete HTTP response head")
    lines = raw[:head_end].decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        return Response(status=None, problem=f"malformed status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    start = head_end + 4
    if "chunked" in headers.get("transfer-encoding", "").lower():
        spans, complete = _dechunk(raw, start)
        body = b"".join(raw[r : r + ln] for _, r, ln in spans)

        starts = [sp[0] for sp in spans]

        def body_time(body_offset: int) -> int:
            k = bisect.bisect_right(starts, body_offset) - 1
            b_off, r_off, _ = spans[max(k, 0)]
            return time_at(r_off + body_offset - b_off)
    else:
        body = raw[start:]
        length = headers.get("content-length")
        complete = length is None or len(body) >= int(length)

        def body_time(body_offset: int) -> int:
            return time_at(start + body_offset)

    resp = Response(status=status, headers=headers, body=body, complete=complete)
    resp.body_t_ns = body_time(len(body) - 1) if body else (times[-1] if times else 0)
    if "text/event-stream" in headers.get("content-type", "") or body.startswith(b"data:"):
        resp.events = _sse_events(body, body_time)
    return resp


def _sse_events(body: bytes, body_time: Any) -> list[Event]:
    events = []
    pos, n = 0, len(body)
    while pos < n:
        a = body.find(b"\n\n", pos)
        b = body.find(b"\r\n\r\n", pos)
        if a < 0 and b < 0:
            break  # an unterminated event: the stream broke
        if b >= 0 and (a < 0 or b < a):
            end, sep = b, 4
        else:
            end, sep = a, 2
        block = body[pos:end]
        t = body_time(end + sep - 1)
        pos = end + sep
        data_lines = [
            ln[5:].lstrip(b" ") for ln in block.replace(b"\r\n", b"\n").split(b"\n") if ln.startswith(b"data:")
        ]
        if not data_lines:
            continue  # comment or keep-alive
        data = b"\n".join(data_lines)
        if data.strip() == b"[DONE]":
            events.append(Event(t, None, done=True))
            continue
        try:
            events.append(Event(t, json.loads(data)))
        except ValueError:
            events.append(Event(t, {"error": {"message": f"event is not JSON: {data[:80]!r}"}}))
    return events


def _content_len(choice: dict[str, Any], api: str) -> int:
    """Length of the content a choice carries (0 when it carries none)."""
    if api == "completions":
        return len(choice.get("text") or "")
    delta = choice.get("delta") or choice.get("message") or {}
    size = len(delta.get("content") or "") + len(delta.get("reasoning_content") or delta.get("reasoning") or "")
    for call in delta.get("tool_calls") or ():
        fn = call.get("function") or {}
        size += len(fn.get("arguments") or "") + len(fn.get("name") or "")
    return size


def _error_message(obj: dict[str, Any]) -> str | None:
    err = obj.get("error")
    if err is not None:
        return str(err.get("message", err)) if isinstance(err, dict) else str(err)
    if obj.get("object") == "error":
        return str(obj.get("message", "error"))
    return None


def to_sample(
    index: int,
    request_id: str,
    *,
    scheduled_ns: int,
    ready_ns: int,
    sent_ns: int,
    done_ns: int,
    times: list[int],
    bufs: list[bytes],
    client_error: str | None,
    api: str = "chat",
    dataset_input_tokens: int | None = None,
) -> RequestSample:
    """Turn one recorded request into a :class:`RequestSample` (success or a failure reason)."""
    s = RequestSample(index, request_id, scheduled_ns, ready_ns, sent_ns, done_ns, success=False, reads=len(times))
    s.input_tokens = dataset_input_tokens
    if not bufs:
        s.error = client_error or "no response"
        return s
    resp = split_response(times, bufs)
    s.status = resp.status
    if resp.problem:
        s.error = client_error or f"bad response: {resp.problem}"
        return s
    if resp.status != 200:
        detail = resp.body[:200].decode("utf-8", "replace").strip()
        s.error = f"HTTP {resp.status}: {detail}"
        return s
    if not resp.events and resp.body.lstrip().startswith(b"{"):
        # Not streamed: one JSON response; its content arrives all at once.
        try:
            resp.events = [Event(resp.body_t_ns, json.loads(resp.body))]
        except ValueError:
            s.error = "bad response: body is not JSON"
            return s
    s.events = len(resp.events)
    prev_cum = 0
    chunk_tokens: list[int] = []
    per_chunk_usage = True
    error = None
    saw_done = False
    for ev in resp.events:
        if ev.done:
            saw_done = True
            continue
        obj = ev.data
        if not isinstance(obj, dict):
            continue
        msg = _error_message(obj)
        if msg:
            error = msg
            continue
        stamp = obj.get("sim_sent_ns")
        if isinstance(stamp, int):
            s.server_delays_ns.append(ev.t_ns - stamp)
        usage = obj.get("usage")
        cum = None
        if isinstance(usage, dict):
            if usage.get("prompt_tokens") is not None:
                s.input_tokens = int(usage["prompt_tokens"])
            if usage.get("completion_tokens") is not None:
                cum = int(usage["completion_tokens"])
                s.output_tokens = cum
        choices = obj.get("choices") or ()
        size = sum(_content_len(c, api) for c in choices if isinstance(c, dict))
        if size:
            s.chunk_ns.append(ev.t_ns)
            s.chunk_chars.append(size)
            if cum is None:
                per_chunk_usage = False
            else:
                chunk_tokens.append(cum - prev_cum)
        if cum is not None:
            prev_cum = cum
    if per_chunk_usage and chunk_tokens and len(chunk_tokens) == len(s.chunk_ns):
        s.chunk_tokens = chunk_tokens
    if error:
        s.error = f"error event: {error}"
    elif client_error and not (resp.complete and (saw_done or not resp.events)):
        s.error = client_error
    elif not resp.complete:
        s.error = "stream broken: the response ended before its last chunk"
    elif not s.chunk_ns:
        s.error = "no content: the response carried no content chunk"
    else:
        s.success = True
    return s
