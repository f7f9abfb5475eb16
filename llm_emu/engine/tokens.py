"""Synthetic output: valid, non-special, detokenizable token ids, an output-length model and logprobs."""

from __future__ import annotations

from typing import Any

import numpy as np

#: Ids below this are control/special tokens in the tokenizers we ship (Mistral v3 reserves 0..770).
MIN_ID = 1000


def token_pool(vocab_size: int, special_ids: set[int], seed: int = 0, size: int = 4096) -> np.ndarray:
    """A fixed pool of ordinary token ids to emit, drawn once per server."""
    hi = max(vocab_size, MIN_ID + 1)
    rng = np.random.default_rng(seed)
    ids = rng.choice(np.arange(MIN_ID, hi), size=min(size, hi - MIN_ID), replace=False)
    return np.array([i for i in ids if int(i) not in special_ids], dtype=np.int64)


def tokenizer_limits(model_config: Any) -> tuple[int, set[int]]:
    """(usable vocab size, special ids) of the server's tokenizer, bounded by the model's vocab."""
    vocab = int(model_config.get_vocab_size())
    special: set[int] = set()
    try:
        from vllm.tokenizers import cached_tokenizer_from_config

        tok = cached_tokenizer_from_config(model_config)
        vocab = min(vocab, len(tok))
        special = set(getattr(tok, "all_special_ids", []) or [])
    except Exception:  # no tokenizer (skip_tokenizer_init): model vocab is all we know
        pass
    return vocab, special


class OutputLengthModel:
    """When does a request stop on its own (EOS) before max_tokens? Empirical, from a pack's requests table.

    With probability ``p_stop`` (the measured share of requests that finished with "stop"), a request draws
    its natural length from the measured stop lengths; otherwise it runs to max_tokens.
    """

    def __init__(self, requests: Any, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)
        stops = requests[requests["finish_reason"] == "stop"]["output_len"].to_numpy() if requests is not None else []
        self._lengths = np.asarray(stops, dtype=np.int64)
        self.p_stop = len(self._lengths) / max(1, len(requests)) if requests is not None else 0.0

    def draw(self) -> int | None:
        """Natural output length of a new request, or None (runs to max_tokens)."""
        if len(self._lengths) == 0 or self._rng.random() >= self.p_stop:
            return None
        return int(self._lengths[self._rng.integers(len(self._lengths))])


def logprob_rows(sampled: list[int], wanted: list[int | None], pool: np.ndarray, rng: np.random.Generator) -> Any:
    """vLLM ``LogprobsLists`` for one step: one row per request, sampled token first, then top-k.

    Returns None when no request in the step asked for logprobs.
    """
    ks = [k for k in wanted if k is not None]
    if not ks:
        return None
    from vllm.v1.outputs import LogprobsLists

    k = max(ks)
    n = len(sampled)
    ids = np.empty((n, k + 1), dtype=np.int32)
    ids[:, 0] = sampled
    ids[:, 1:] = pool[rng.integers(len(pool), size=(n, k))] if k else ids[:, 1:]
    if k:
        ids[:, 1] = sampled  # the sampled token is also the top-1 candidate
    top = -np.sort(rng.exponential(1.0, size=(n, k)), axis=1) if k else np.zeros((n, 0))
    lps = np.concatenate([top[:, :1] if k else np.full((n, 1), -0.1), top], axis=1).astype(np.float32)
    ranks = np.ones(n, dtype=np.int32)
    return LogprobsLists(logprob_token_ids=ids, logprobs=lps, sampled_token_ranks=ranks)
