"""inference-perf's ``shared_prefix`` workload, rebuilt as a JSONL file for vLLM's CustomDataset.

As inference-perf builds its prompts: per group a random-token system prompt, per request a random-token
question, both decoded to text with the model's tokenizer and joined by a space. Requests go to the groups in
turn; every question is new, so only the system prompts are shared (and prefix-cached). The file lists the
requests in send order (vLLM's client is run with --disable-shuffle).
"""

from __future__ import annotations

import hashlib
import json
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


def shared_prefix_prompts(tok: Any, groups: int, prefix_len: int, question_len: int, num_requests: int,
                          seed: int = 0) -> list[str]:
    """``num_requests`` prompts: group ``i % groups``'s system prompt + a new question (deterministic)."""
    rng = np.random.default_rng(seed)
    vocab = _vocab_size(tok)

    def text(n: int) -> str:
        return str(tok.decode(rng.integers(0, vocab, size=n).tolist(), skip_special_tokens=True))

    prefixes = [text(prefix_len) for _ in range(groups)]
    return [prefixes[i % groups] + " " + text(question_len) for i in range(num_requests)]


def shared_prefix_file(model: str, groups: int, prefix_len: int, question_len: int, num_requests: int,
                       seed: int = 0) -> Path:
    """A cached JSONL file of the ``num_requests`` prompts (one {"prompt": ...} per line, in send order)."""
    key = hashlib.sha256(json.dumps([model, groups, prefix_len, question_len, num_requests, seed]).encode())
    dest = cache_dir() / "reference" / f"shared-prefix-{key.hexdigest()[:16]}.jsonl"
    if dest.is_file():
        return dest
    prompts = shared_prefix_prompts(_tokenizer(model), groups, prefix_len, question_len, num_requests, seed)
    atomic_write_text(dest, "".join(json.dumps({"prompt": prompt}) + "\n" for prompt in prompts))
    return dest


def pool_prompts(tok: Any, pool: int, input_len: int, num_requests: int, seed: int = 0) -> list[str]:
    """``num_requests`` prompts drawn uniformly (seeded) from ``pool`` distinct random-token prompts of
    ``input_len`` tokens, as aiperf samples its dataset entries (deterministic)."""
    rng = np.random.default_rng(seed)
    vocab = _vocab_size(tok)
    prompts = [str(tok.decode(rng.integers(0, vocab, size=input_len).tolist(), skip_special_tokens=True))
               for _ in range(pool)]
    return [prompts[int(i)] for i in rng.integers(0, pool, size=num_requests)]


def pool_file(model: str, pool: int, input_len: int, num_requests: int, part: tuple[int, int],
              seed: int = 0) -> Path:
    """A cached JSONL file of ``pool_prompts(...)[part[0]:part[1]]`` (one {"prompt": ...} per line, in send
    order): a warm-up and the measured run take consecutive parts of one draw from the same pool."""
    key = hashlib.sha256(json.dumps(["pool", model, pool, input_len, num_requests, list(part), seed]).encode())
    dest = cache_dir() / "reference" / f"pool-{key.hexdigest()[:16]}.jsonl"
    if dest.is_file():
        return dest
    prompts = pool_prompts(_tokenizer(model), pool, input_len, num_requests, seed)[part[0]:part[1]]
    atomic_write_text(dest, "".join(json.dumps({"prompt": prompt}) + "\n" for prompt in prompts))
    return dest
