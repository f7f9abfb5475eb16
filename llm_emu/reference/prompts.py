"""inference-perf's ``shared_prefix`` prompts, rebuilt as a JSONL file for vLLM's CustomDataset.

As the pinned inference-perf commit does it: per group a random-token system prompt, per prompt a random-token
question, both decoded to text with the model's tokenizer and joined by a space; the prompts are shuffled once
and requests cycle through them, so every prompt repeats. The file lists the requests in send order (vLLM's
client is run with --disable-shuffle), which reproduces the cycling exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from llm_emu.models import cache_dir, resolve_model


def _tokenizer(model: str) -> Any:
    from vllm.tokenizers import get_tokenizer

    resolved = resolve_model(model)
    kwargs: dict[str, Any] = {"tokenizer_mode": resolved.tokenizer_mode} if resolved.tokenizer_mode else {}
    return get_tokenizer(resolved.tokenizer or resolved.model, **kwargs)


def _vocab_size(tok: Any) -> int:
    size = getattr(tok, "vocab_size", None)
    return int(size) if size else len(tok)


def shared_prefix_prompts(tok: Any, groups: int, per_group: int, prefix_len: int, question_len: int,
                          seed: int = 0) -> list[str]:
    """The ``groups * per_group`` prompts in inference-perf's shuffled order (deterministic under ``seed``)."""
    rng = np.random.default_rng(seed)
    vocab = _vocab_size(tok)

    def text(n: int) -> str:
        return str(tok.decode(rng.integers(0, vocab, size=n).tolist(), skip_special_tokens=True))

    prompts = []
    for _ in range(groups):
        prefix = text(prefix_len)
        prompts += [prefix + " " + text(question_len) for _ in range(per_group)]
    order = rng.permutation(len(prompts))
    return [prompts[i] for i in order]


def cycled_prompts_file(model: str, groups: int, per_group: int, prefix_len: int, question_len: int,
                        num_requests: int, seed: int = 0) -> Path:
    """A cached JSONL file of ``num_requests`` prompts cycling through the shared-prefix prompts."""
    key = hashlib.sha256(json.dumps([model, groups, per_group, prefix_len, question_len, num_requests, seed])
                         .encode()).hexdigest()[:16]
    dest = cache_dir() / "reference" / f"shared-prefix-{key}.jsonl"
    if dest.is_file():
        return dest
    prompts = shared_prefix_prompts(_tokenizer(model), groups, per_group, prefix_len, question_len, seed)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".shared-prefix-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for i in range(num_requests):
            fh.write(json.dumps({"prompt": prompts[i % len(prompts)]}) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, dest)
    return dest
