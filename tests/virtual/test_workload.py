"""The virtual run's requests and send times are the ones vLLM's benchmark client would use."""

from __future__ import annotations

import asyncio
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from llm_emu.virtual.workload import arrival_offsets


def _vllm_offsets(n: int, rate: float, burstiness: float, seed: int, mp: pytest.MonkeyPatch) -> list[float]:
    """Send offsets from vLLM's own get_request, observed through the sleeps it asks for."""
    import vllm.benchmarks.serve as serve

    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    async def drain() -> None:
        async for _ in serve.get_request([object()] * n, rate, burstiness):
            pass

    np.random.seed(seed)
    with mp.context() as m:  # frozen time: each requested sleep is that request's offset
        m.setattr(serve.time, "time", lambda: 1000.0)
        m.setattr(serve.asyncio, "sleep", fake_sleep)
        asyncio.run(drain())
    return slept


@pytest.mark.parametrize(("rate", "burstiness"), [(4.0, 1.0), (10.0, 0.25), (2.0, math.inf), (7.0, 3.0)])
def test_offsets_match_vllm_client(rate: float, burstiness: float, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _vllm_offsets(50, rate, burstiness, seed=3, mp=monkeypatch)
    np.random.seed(3)
    ours = arrival_offsets(50, rate, burstiness)
    assert ours == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert ours[-1] == pytest.approx(50 / rate)


def test_all_at_once() -> None:
    assert arrival_offsets(5, math.inf, 1.0) == [0.0] * 5


def test_trimmed_sharegpt_samples_identically(tmp_path: Path) -> None:
    """The cache keeps two turns per record; vLLM's ShareGPT sampling must not change."""
    from vllm.benchmarks.datasets import ShareGPTDataset

    from llm_emu.workload.sharegpt import first_two_turns

    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    records = []
    for i in range(300):
        turns = [{"from": "human" if t % 2 == 0 else "gpt",
                  "value": " ".join(rng.choice(words) for _ in range(rng.randint(3, 60)))}
                 for t in range(rng.randint(1, 7))]
        records.append({"id": f"r{i}", "conversations": turns})
    full, trimmed = tmp_path / "full.json", tmp_path / "trimmed.json"
    full.write_text(json.dumps(records))
    trimmed.write_text(json.dumps([first_two_turns(r) for r in records]))

    class WordTokenizer:
        def __call__(self, text: str) -> object:
            return type("Enc", (), {"input_ids": text.split()})()

    def sample(path: Path) -> list[tuple[str, int, int]]:
        ds = ShareGPTDataset(dataset_path=str(path), random_seed=7)
        return [(s.prompt, s.prompt_len, s.expected_output_len) for s in ds.sample(WordTokenizer(), 60)]

    assert sample(full) == sample(trimmed)
    assert len(sample(full)) == 60
