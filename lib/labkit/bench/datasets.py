"""Benchmark prompts: synthetic with exact token counts, ShareGPT-format JSON and custom JSONL.

Every loader is seeded: the same arguments give the same prompts in the same order.

How tokens are counted (no tokenizer is loaded):

- Synthetic prompts are built from :data:`WORDS`, common English words of at most four
  letters. Each is one token: in the GPT-2, cl100k/o200k and Llama 3 BPE vocabularies
  (with its leading space; the first word of a prompt comes from :data:`FIRST_WORDS`, one
  token without it) and under the embedded simulator's rule (``ceil(len/4)`` per
  whitespace-separated piece). A synthetic prompt of ``n`` input tokens is ``n`` words.
  The server adds its chat template (BOS, role headers), so ``usage.prompt_tokens``
  is a few tokens more; results report the server's count when it sends ``usage``.
- Output lengths are made exact by asking the server for them: ``max_tokens = min_tokens =
  n`` and ``ignore_eos`` (vLLM's sampling extensions; see :mod:`labkit.bench.client`).
  Results count output tokens from the server's ``usage``, never from the text.
- ShareGPT and JSONL text without a stated length is estimated at four characters per token
  (:func:`estimate_tokens`); the estimate only picks default output lengths and filters.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError

#: One-token words (see the module docstring), all lowercase ASCII of one to four letters.
_WORDS_TEXT = """
    the of and to in is it you that he was for on are as with his they at be this have from or one had by
    but not what all were we when your can said an each she do how if will up out many then them so some her
    make like him into time has look two more go see no way my than been call who its now find long down day
    did get come made may part over new take only work know year live me back give most very our just name
    good man say line turn much mean move old too same tell does set why ask went men read need land home
    us hand big high such kind off play air away page food sun four open seem next hard both near keep last
"""
WORDS: tuple[str, ...] = tuple(_WORDS_TEXT.split())
#: First words of a prompt: one token even without a leading space (the template puts none before them).
FIRST_WORDS: tuple[str, ...] = ("the", "and", "to", "in", "it", "you", "that", "for", "on", "with", "this", "all")


@dataclass(frozen=True)
class Prompt:
    """One request's input.

    Attributes:
        id: stable identifier within the dataset.
        text: the prompt text (the single user message for chat endpoints).
        messages: a full chat conversation, when the dataset has one (used instead of ``text``).
        input_tokens: prompt tokens by the dataset's counting rule (exact for synthetic prompts).
        output_tokens: output tokens to ask for exactly; ``None`` lets the server stop on its own.
    """

    id: str
    text: str
    messages: tuple[dict[str, str], ...] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    def chat_messages(self) -> list[dict[str, str]]:
        """The conversation to send to a chat endpoint."""
        return [dict(m) for m in self.messages] if self.messages else [{"role": "user", "content": self.text}]


@dataclass(frozen=True)
class Dataset:
    """Prompts plus a description of how they were made (goes into the result's metadata)."""

    name: str
    prompts: tuple[Prompt, ...]
    description: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prompts)

    def take(self, count: int) -> Dataset:
        """The first ``count`` prompts, cycling when the dataset is shorter."""
        if not self.prompts:
            raise ConfigError(f"dataset '{self.name}' has no prompts", "check the file or the filters")
        cycled = tuple(self.prompts[i % len(self.prompts)] for i in range(count))
        return Dataset(self.name, cycled, {**self.description, "requests": count})

    def metadata(self) -> dict[str, Any]:
        """What the result records about the dataset."""
        ins = [p.input_tokens for p in self.prompts if p.input_tokens is not None]
        outs = [p.output_tokens for p in self.prompts if p.output_tokens is not None]
        return {
            "name": self.name,
            "prompts": len(self.prompts),
            **self.description,
            "mean_input_tokens": sum(ins) / len(ins) if ins else None,
            "mean_requested_output_tokens": sum(outs) / len(outs) if outs else None,
        }


def estimate_tokens(text: str) -> int:
    """Estimate tokens at four characters per token per whitespace-separated piece."""
    return sum((len(piece) + 3) // 4 for piece in text.split())


def _length(value: int | tuple[int, int], rng: random.Random, what: str) -> int:
    if isinstance(value, tuple):
        low, high = value
        if not 1 <= low <= high:
            raise ConfigError(f"{what} range {value} is invalid", "use (low, high) with 1 <= low <= high")
        return rng.randint(low, high)
    if value < 1:
        raise ConfigError(f"{what} must be at least 1, got {value}", f"ask for a positive {what}")
    return value


def synthetic(
    count: int,
    *,
    input_tokens: int | tuple[int, int] = 128,
    output_tokens: int | tuple[int, int] = 128,
    seed: int = 0,
) -> Dataset:
    """Random prompts with exact input token counts and exact requested output counts.

    Args:
        count: number of prompts.
        input_tokens: prompt length in tokens, or ``(low, high)`` drawn uniformly per prompt.
        output_tokens: output tokens to ask for, or ``(low, high)``.
        seed: seeds the words and lengths.
    """
    if count < 1:
        raise ConfigError(f"a synthetic dataset needs at least one prompt, got {count}", "use count >= 1")
    rng = random.Random(seed)
    prompts = []
    for i in range(count):
        n_in = _length(input_tokens, rng, "input_tokens")
        n_out = _length(output_tokens, rng, "output_tokens")
        text = " ".join([rng.choice(FIRST_WORDS), *rng.choices(WORDS, k=n_in - 1)])
        prompts.append(Prompt(id=f"synthetic-{seed}-{i}", text=text, input_tokens=n_in, output_tokens=n_out))
    return Dataset(
        "synthetic",
        tuple(prompts),
        {
            "seed": seed,
            "input_tokens": list(input_tokens) if isinstance(input_tokens, tuple) else input_tokens,
            "output_tokens": list(output_tokens) if isinstance(output_tokens, tuple) else output_tokens,
            "token_rule": "one word from labkit.bench.datasets.WORDS = one token; server template tokens extra",
        },
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"dataset file {path} does not exist", "check the path") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"dataset file {path} is not valid JSON: {exc}", "check the file's format") from exc


def _pick(prompts: list[Prompt], count: int | None, seed: int, shuffle: bool) -> tuple[Prompt, ...]:
    if shuffle:
        random.Random(seed).shuffle(prompts)
    return tuple(prompts if count is None else prompts[:count])


def sharegpt(
    path: str | Path,
    *,
    count: int | None = None,
    seed: int = 0,
    output_tokens: int | None = None,
    min_tokens: int = 4,
    max_input_tokens: int = 1024,
    max_output_tokens: int = 2048,
) -> Dataset:
    """Prompts from a ShareGPT-format JSON file (a list of ``{"conversations": [{"from", "value"}...]}``).

    The first turn is the prompt and the second turn's estimated length (:func:`estimate_tokens`)
    is the output length to ask for, unless ``output_tokens`` fixes it. Conversations with fewer
    than two turns, or outside the token limits, are skipped (as ``vllm bench serve`` does).

    Args:
        path: the JSON file.
        count: how many prompts to keep after shuffling; ``None`` keeps all.
        seed: seeds the shuffle.
        output_tokens: a fixed output length for every prompt.
        min_tokens: skip prompts or replies estimated shorter than this.
        max_input_tokens: skip prompts estimated longer than this.
        max_output_tokens: skip replies estimated longer than this.
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, list):
        raise ConfigError(f"{path} is not a ShareGPT file: expected a JSON list", 'use [{"conversations": [...]}]')
    prompts = []
    for i, entry in enumerate(data):
        turns = entry.get("conversations") if isinstance(entry, dict) else None
        if not isinstance(turns, list) or len(turns) < 2:
            continue
        text, reply = str(turns[0].get("value", "")), str(turns[1].get("value", ""))
        n_in, n_reply = estimate_tokens(text), estimate_tokens(reply)
        n_out = output_tokens if output_tokens is not None else n_reply
        if n_in < min_tokens or n_in > max_input_tokens or n_out < min_tokens or n_out > max_output_tokens:
            continue
        prompts.append(Prompt(id=str(entry.get("id", i)), text=text, input_tokens=n_in, output_tokens=n_out))
    if not prompts:
        raise ConfigError(f"{path} has no usable conversations", "check the format and the token limits")
    kept = _pick(prompts, count, seed, shuffle=True)
    return Dataset("sharegpt", kept, {"path": str(path), "seed": seed, "token_rule": "estimated, 4 chars/token"})


def jsonl(path: str | Path, *, count: int | None = None, seed: int = 0, shuffle: bool = False) -> Dataset:
    """Prompts from a JSON Lines file, one object per line.

    Each line has ``prompt`` (text) or ``messages`` (a chat conversation), and optionally
    ``output_tokens`` (exact output length to ask for), ``input_tokens`` and ``id``.

    Args:
        path: the file.
        count: keep this many (after the optional shuffle); ``None`` keeps all.
        seed: seeds the shuffle.
        shuffle: shuffle before taking ``count``.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError as exc:
        raise ConfigError(f"dataset file {path} does not exist", "check the path") from exc
    prompts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number} is not valid JSON: {exc}", "write one JSON object per line") from exc
        if not isinstance(row, dict) or ("prompt" not in row and "messages" not in row):
            raise ConfigError(f"{path}:{number} has neither 'prompt' nor 'messages'", 'e.g. {"prompt": "Hello"}')
        messages = _messages(row.get("messages"), f"{path}:{number}")
        text = str(row.get("prompt", "")) or " ".join(m["content"] for m in messages or ())
        out = row.get("output_tokens")
        prompts.append(
            Prompt(
                id=str(row.get("id", number)),
                text=text,
                messages=messages,
                input_tokens=int(row["input_tokens"]) if "input_tokens" in row else estimate_tokens(text),
                output_tokens=int(out) if out is not None else None,
            )
        )
    if not prompts:
        raise ConfigError(f"{path} has no prompts", "add one JSON object per line")
    kept = _pick(prompts, count, seed, shuffle)
    return Dataset("jsonl", kept, {"path": str(path), "seed": seed, "shuffled": shuffle})


def _messages(value: Any, where: str) -> tuple[dict[str, str], ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(m, dict) and "role" in m for m in value):
        raise ConfigError(f"{where}: 'messages' must be a list of {{role, content}}", "fix the line")
    return tuple({"role": str(m["role"]), "content": str(m.get("content", ""))} for m in value)


def load(spec: str, *, count: int, seed: int = 0, input_tokens: int = 128, output_tokens: int | None = 128) -> Dataset:
    """Load a dataset from a CLI-style spec: ``synthetic``, ``sharegpt:PATH`` or ``jsonl:PATH``.

    Args:
        spec: which dataset.
        count: number of prompts (files cycle when shorter).
        seed: seeds generation and shuffling.
        input_tokens: synthetic prompt length.
        output_tokens: synthetic output length; for files, a fixed output length (``None``: the file's).
    """
    kind, _, arg = spec.partition(":")
    if kind == "synthetic":
        return synthetic(count, input_tokens=input_tokens, output_tokens=output_tokens or 128, seed=seed)
    if kind == "sharegpt" and arg:
        return sharegpt(arg, count=count, seed=seed, output_tokens=output_tokens).take(count)
    if kind == "jsonl" and arg:
        data = jsonl(arg, seed=seed)
        if output_tokens is not None:
            data = Dataset(
                data.name,
                tuple(
                    Prompt(p.id, p.text, p.messages, p.input_tokens, p.output_tokens or output_tokens)
                    for p in data.prompts
                ),
                data.description,
            )
        return data.take(count)
    raise ConfigError(f"unknown dataset '{spec}'", "use synthetic, sharegpt:PATH or jsonl:PATH")


def as_list(prompts: Dataset | Sequence[Prompt]) -> list[Prompt]:
    """The prompts of a dataset or a plain sequence."""
    return list(prompts.prompts if isinstance(prompts, Dataset) else prompts)
