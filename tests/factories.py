"""Small factories shared by tests (vLLM tests/v1/core/utils.py style)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import numpy as np
import pandas as pd

from llm_emu.models import MODELS_DIR
from llm_emu.profile.features import STEP_COLUMNS
from llm_emu.profile.pack import DeviceInfo, EngineSettings, ProfileMeta, ProfilePack, Provenance

LLAMA_8B = json.loads((MODELS_DIR / "llama-3.1-8b" / "config.json").read_text())


def run_in_threads(work: Callable[[], None], n: int) -> list[BaseException]:
    """Run ``work`` in ``n`` threads at once; the exceptions they raised (none: an empty list)."""
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            work()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def linear_latency_us(p: np.ndarray, d: np.ndarray, kv: np.ndarray) -> np.ndarray:
    """The ground truth used by synthetic packs: 4 ms + 20 us/prefill token + 25 us/decode + 2 ns/KV token."""
    return 4000.0 + 20.0 * p + 25.0 * d + 0.002 * kv


def synthetic_steps(n: int = 2000, seed: int = 0, noise_us: float = 200.0) -> pd.DataFrame:
    """Steps spread over the batch space with a known latency law plus gamma noise (a right tail)."""
    rng = np.random.default_rng(seed)
    p = rng.choice([0, 0, 0, 16, 128, 512, 1024, 2048], size=n) * rng.integers(1, 3, size=n)
    d = rng.integers(0, 256, size=n)
    kvd = d * rng.integers(50, 2000, size=n)
    df = pd.DataFrame({
        "num_prefill_tokens": p,
        "num_prefill_reqs": (p > 0).astype(int),
        "num_decode_reqs": d,
        "decode_context_tokens": kvd,
        "prefill_context_tokens": np.zeros(n, dtype=int),
    })
    df["latency_us"] = linear_latency_us(p, d, kvd) + rng.gamma(2.0, noise_us / 2.0, size=n)
    return df[list(STEP_COLUMNS)]


def make_pack(steps: pd.DataFrame | None = None, oracle: str = "table", **meta_overrides: object) -> ProfilePack:
    """A measured-looking pack for Llama-3.1-8B shapes."""
    meta = ProfileMeta(
        device=DeviceInfo(name="Test GPU", memory_bytes=80 * 2**30),
        engine=EngineSettings(num_gpu_blocks=1000),
        model="llama-3.1-8b",
        vllm_version="0.32.0",
        provenance=Provenance(kind="measured", created_at="2026-11-21T00:00:00+00:00", method="synthetic test"),
        model_config=LLAMA_8B,
        oracle=oracle,
        **meta_overrides,  # type: ignore[arg-type]
    )
    return ProfilePack(meta=meta, steps=synthetic_steps() if steps is None else steps)
