"""Prompt files for vLLM's CustomDataset that the stock datasets cannot make: inference-perf's ``shared_prefix``
workload and aiperf's fixed prompt pool.

As inference-perf builds its prompts: per group a random-token system prompt, per request a random-token
question, both decoded to text with the model's tokenizer and joined by a space. Requests go to the groups in
turn; every question is new, so only the system prompts are shared (and prefix-cached). The file lists the
requests in send order (vLLM's client is run with --disable-shuffle). A pool file draws every request from a
fixed set of random-token prompts, with repeats, as aiperf samples its dataset entries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from llm_emu.fsutil import atomic_write_text
from llm_emu.models import cache_dir, resolve_model


def _tokenizer(model: str) -> Any:
    from vllm.tokenizers import get_tokenizer

    resolved = resolve_model(model)
    kwargs: dict[str, Any] = {"tokenizer_mode": resolved.tokenizer_mode} if resolved.tokenizer_mode else {}
    return get_tokenizer(resolved.tokenizer or resolved.model, **kwargs)


def _vocab_size(tok: Any) -> int:
    size = getattr(tok, "vocab_size", None)
    return int(size) if size else len(tok)


def _random_text(tok: Any, rng: np.random.Generator, n: int) -> str:
    """Text decoded from ``n`` token ids drawn uniformly from the tokenizer's vocabulary."""
    return str(tok.decode(rng.integers(0, _vocab_size(tok), size=n).tolist(), skip_special_tokens=True))


def _cached_file(name: str, key: list[Any], prompts: Callable[[], list[str]]) -> Path:
    """``cache_dir()/reference/<name>-<hash of key>.jsonl`` with one {"prompt": ...} per line, written once."""
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
    dest = cache_dir() / "reference" / f"{name}-{digest}.jsonl"
    if not dest.is_file():
        atomic_write_text(dest, "".join(json.dumps({"prompt": prompt}) + "\n" for prompt in prompts()))
    return dest


def shared_prefix_prompts(tok: Any, groups: int, prefix_len: int, question_len: int, num_requests: int,
                          seed: int = 0) -> list[str]:
    """``num_requests`` prompts: group ``i % groups``'s system prompt + a new question (deterministic)."""
    rng = np.random.default_rng(seed)
    prefixes = [_random_text(tok, rng, prefix_len) for _ in range(groups)]
    return [prefixes[i % groups] + " " + _random_text(tok, rng, question_len) for i in range(num_requests)]


def shared_prefix_file(model: str, groups: int, prefix_len: int, question_len: int, num_requests: int,
                       seed: int = 0) -> Path:
    """A cached JSONL file of the ``num_requests`` prompts (one {"prompt": ...} per line, in send order)."""
    return _cached_file("shared-prefix", [model, groups, prefix_len, question_len, num_requests, seed],
                        lambda: shared_prefix_prompts(_tokenizer(model), groups, prefix_len, question_len,
                                                      num_requests, seed))


def pool_prompts(tok: Any, pool: int, input_len: int, num_requests: int, seed: int = 0) -> list[str]:
    """``num_requests`` prompts drawn uniformly (seeded) from ``pool`` distinct random-token prompts of
    ``input_len`` tokens, as aiperf samples its dataset entries (deterministic)."""
    rng = np.random.default_rng(seed)
    prompts = [_random_text(tok, rng, input_len) for _ in range(pool)]
    return [prompts[int(i)] for i in rng.integers(0, pool, size=num_requests)]


def pool_file(model: str, pool: int, input_len: int, num_requests: int, part: tuple[int, int],
              seed: int = 0) -> Path:
    """A cached JSONL file of ``pool_prompts(...)[part[0]:part[1]]`` (one {"prompt": ...} per line, in send
    order): a warm-up and the measured run take consecutive parts of one draw from the same pool."""
    return _cached_file("pool", ["pool", model, pool, input_len, num_requests, list(part), seed],
                        lambda: pool_prompts(_tokenizer(model), pool, input_len, num_requests, seed)[part[0]:part[1]])
