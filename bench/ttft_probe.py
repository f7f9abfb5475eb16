"""Light-load TTFT probe: isolated requests, alternating between a real and an emulated server.

Both servers are up at once; the one not being probed is stopped (SIGSTOP to its process group) so that it
cannot run. Each probe sends one ShareGPT prompt (streaming completion, ``max_tokens`` small) to one server,
waits for the answer, then pauses; the same prompt goes to the other server next. Per request it records
the client's TTFT and vLLM's own request timing from ``/metrics`` (one request per scrape pair), and both
servers write step traces, so the TTFT difference can be split into queueing, prefill and host path::

    python bench/ttft_probe.py --profile PACK --out DIR [--n 60] [--max-tokens 8] [--warm]
                               [--before-code DIR]

``--before-code DIR`` adds a third server: the emulator from another copy of the code (e.g. ``git archive main``
unpacked in DIR) with ``--before-profile`` (default: the same pack), for before/after comparisons against the
same real server.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import random
import signal
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from llm_emu.capture.cpuset import ServerPinning
from llm_emu.server import ServerProcess
from llm_emu.validate import server_metrics
from llm_emu.validate.cli import server_spec


def prompts(n: int, seed: int) -> list[str]:
    from llm_emu.workload.sharegpt import sharegpt_path

    data = json.loads(Path(sharegpt_path()).read_text())
    firsts = [d["conversations"][0]["value"] for d in data if len(d.get("conversations", [])) >= 2]
    firsts = [p for p in firsts if 50 < len(p) < 3000]
    return random.Random(seed).sample(firsts, n)


def stream_ttft(base: str, model: str, prompt: str, max_tokens: int) -> tuple[float, float]:
    """(ttft_s, e2e_s) of one streaming completion."""
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens, "stream": True,
                       "ignore_eos": True}).encode()
    req = urllib.request.Request(base + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    ttft = float("nan")
    with urllib.request.urlopen(req, timeout=120) as resp:
        for raw in resp:
            line = raw.strip()
            if line.startswith(b"data:") and line != b"data: [DONE]" and ttft != ttft:
                ttft = time.perf_counter() - t0
    return ttft, time.perf_counter() - t0


def probe(s: ServerProcess, prompt: str, max_tokens: int) -> dict[str, Any]:
    before = server_metrics.scrape(s.base_url)
    t_wall = time.time()
    ttft, e2e = stream_ttft(s.base_url, s.served_model, prompt, max_tokens)
    time.sleep(0.02)  # the API server records a finished request's stats after its last chunk
    timing = server_metrics.cell_means(before, server_metrics.scrape(s.base_url))
    return {"t_wall": t_wall, "ttft_ms": ttft * 1e3, "e2e_ms": e2e * 1e3, "prompt_chars": len(prompt), **timing}


@contextlib.contextmanager
def running(server: ServerProcess) -> Iterator[None]:
    """SIGCONT the server's process group while inside, SIGSTOP it after."""
    assert server.proc is not None
    os.killpg(server.proc.pid, signal.SIGCONT)
    try:
        yield
    finally:
        os.killpg(server.proc.pid, signal.SIGSTOP)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", required=True)
    p.add_argument("--model", default="tiny-llama")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=60)
    p.add_argument("--max-tokens", type=int, default=8)
    p.add_argument("--pause", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--before-code", default=None, help="directory with another llm_emu (a third server)")
    p.add_argument("--before-profile", default=None, help="pack of the third server (default: --profile)")
    p.add_argument("--warm", action="store_true",
                   help="send each prompt a second time right after the first (prefix cache reset in between)")
    args = p.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ns = argparse.Namespace(profile=args.profile, model=args.model, emu_seed=0, no_step_trace=False,
                            vllm_args=[])
    pin = ServerPinning.make(None, None, True)
    servers = {k: ServerProcess(server_spec(k, ns, pin, out)) for k in ("real", "emulated")}
    if args.before_code:
        before = argparse.Namespace(**{**vars(ns), "profile": args.before_profile or args.profile})
        spec = server_spec("emulated", before, pin, out / "before")
        env = {**spec.env, "PYTHONPATH": str(Path(args.before_code).resolve())}
        servers["emulated-before"] = ServerProcess(dataclasses.replace(spec, env=env))
    rows: list[dict[str, Any]] = []
    try:
        with pin.client():
            for kind, s in servers.items():
                s.start()
                pin.apply_to_server(s)
                print(f"{kind} up in {s.startup_s:.0f} s", file=sys.stderr, flush=True)
                assert s.proc is not None
                os.killpg(s.proc.pid, signal.SIGSTOP)
            for i, prompt in enumerate(prompts(args.n, args.seed)):
                kinds = list(servers)
                order = kinds[i % len(kinds):] + kinds[:i % len(kinds)]
                for kind in order:
                    s = servers[kind]
                    with running(s):
                        time.sleep(args.pause)
                        for phase in ("idle", "warm")[:1 + args.warm]:
                            rows.append({"i": i, "kind": kind, "phase": phase, **probe(s, prompt, args.max_tokens)})
                            s.reset_prefix_cache()
                print(i, {r["kind"]: round(r["ttft_ms"], 2) for r in rows[-len(servers) * (1 + args.warm):]},
                      file=sys.stderr, flush=True)
    finally:
        for s in servers.values():
            if s.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(s.proc.pid, signal.SIGCONT)
            s.stop()
    df = pd.DataFrame(rows)
    df.to_parquet(out / "probe.parquet", index=False)
    cols = [c for c in df.columns if c.endswith("_ms")]
    print(df.groupby(["kind", "phase"])[cols].agg(["mean", "median"]).T.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
