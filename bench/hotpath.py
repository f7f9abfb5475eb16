"""The emulated worker's per-step hot path in isolation (no server): batch mirror, features, oracle, output.

Measures thread CPU time per step for N running decode requests, with vLLM's own SchedulerOutput dataclasses.
Usage: python bench/hotpath.py [--running 64 256] [--steps 500]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from vllm.v1.core.sched.output import CachedRequestData, NewRequestData, SchedulerOutput

from llm_emu.engine.batch import BatchTracker, RequestState, step_features
from llm_emu.engine.tokens import token_pool
from llm_emu.engine.worker import make_output
from llm_emu.models import MODELS_DIR
from llm_emu.oracle import create_oracle
from llm_emu.profile.resolve import resolve_profile

CONFIG = json.loads((MODELS_DIR / "llama-3.1-8b" / "config.json").read_text())


def _sched(new: list, cached: CachedRequestData, num: dict[str, int]) -> SchedulerOutput:
    return SchedulerOutput(scheduled_new_reqs=new, scheduled_cached_reqs=cached, num_scheduled_tokens=num,
                           total_num_scheduled_tokens=sum(num.values()), scheduled_spec_decode_tokens={},
                           scheduled_encoder_inputs={}, finished_req_ids=set(), free_encoder_mm_hashes=[])


def measure(profile: str, running: int, steps: int) -> np.ndarray:
    """Thread CPU seconds per decode step with ``running`` requests."""
    tracker = BatchTracker()
    ids = [str(i) for i in range(running)]
    new = [NewRequestData(req_id=i, prompt_token_ids=list(range(128)), mm_features=[], sampling_params=None,
                          pooling_params=None, block_ids=([],), num_computed_tokens=0, lora_request=None)
           for i in ids]
    empty = CachedRequestData(req_ids=[], resumed_req_ids=set(), new_token_ids=[], all_token_ids={},
                              new_block_ids=[], num_computed_tokens=[], num_output_tokens=[])
    tracker.update(_sched(new, empty, dict.fromkeys(ids, 128)), lambda n: RequestState(prompt_len=128))
    oracle = create_oracle(resolve_profile(profile, CONFIG))
    pool, rng = token_pool(32768, set()), np.random.default_rng(0)
    out = np.empty(steps)
    for k in range(steps):
        cached = CachedRequestData(req_ids=ids, resumed_req_ids=set(), new_token_ids=[], all_token_ids={},
                                   new_block_ids=[None] * running, num_computed_tokens=[128 + k] * running,
                                   num_output_tokens=[k + 1] * running)
        so = _sched([], cached, dict.fromkeys(ids, 1))
        t0 = time.thread_time()
        batch = tracker.update(so, lambda n: RequestState(prompt_len=128))
        oracle.sample(step_features(batch))
        make_output(batch, pool, rng)
        out[k] = time.thread_time() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--running", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--steps", type=int, default=500)
    a = ap.parse_args()
    print("| oracle | running | worker CPU/step median ms | p99 ms |")
    print("|---|---|---|---|")
    for profile in ("formula:", "aic:h100_sxm"):
        for n in a.running:
            t = measure(profile, n, a.steps) * 1e3
            print(f"| {profile.rstrip(':')} | {n} | {np.median(t):.3f} | {np.percentile(t, 99):.3f} |")


if __name__ == "__main__":
    main()
