"""Do two real load generators read the same latencies off the emulator? vLLM's client vs guidellm, side by side.

One `llm-emu serve` is driven in turn by `vllm bench serve` and by `guidellm run` with the same load: the same
prompts (one JSONL file), the same output length (ignore_eos), the same number of requests, the same fixed
arrival rate (guidellm's ``constant`` profile; vLLM's gamma arrivals with a very large burstiness, whose
inter-arrival CV is 1/sqrt(burstiness) = 1 %). The prefix cache is reset before every run and the two clients
alternate, ``--repeats`` runs each. Printed per metric: each client's mean over its runs with the min..max, the
difference of the two means, and the run-to-run spread (the larger of the two clients' (max - min) / mean); the
clients agree on a metric when |difference| <= spread.

Definitions (read in both sources): TTFT is request sent -> first streamed token in both. guidellm's "ITL" is per
request (last token - first token) / (output tokens - 1), which is vLLM's TPOT (not vLLM's ITL, a distribution
over individual token gaps), so it is compared with vLLM's TPOT; medians and p99 are over requests in both.

Both clients run as the commands users type (`vllm` needs the `vllm` distribution: scripts/install.sh).
Usage: python bench/loadgen_agreement.py [--profile aic:h100_sxm] [--model llama-3.1-8b] [--rate 4]
       [--num-prompts 100] [--input-words 300] [--output-len 128] [--repeats 3] [--out runs/loadgen]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from llm_emu.benchclient import tokenizer_flags
from llm_emu.server import ServerProcess, ServerSpec

WORDS = ("the of and to in is that it for on with as was at by an be this from or have are not but had his they "
         "you were her she which their all there can one time river music data light storm engine garden").split()
METRICS = ("mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "median_tpot_ms", "p99_tpot_ms")
GUIDELLM_KEYS = {"ttft": "time_to_first_token_ms", "tpot": "inter_token_latency_ms"}


def write_prompts(path: Path, n: int, words: int, output_len: int, seed: int = 0) -> Path:
    """``n`` prompts of ``words`` random words; the fields both clients read ("output_tokens" for vLLM's custom
    dataset, "output_tokens_count" for guidellm's column mapper)."""
    rng = random.Random(seed)
    rows = [{"prompt": " ".join(rng.choice(WORDS) for _ in range(words)), "output_tokens": output_len,
             "output_tokens_count": output_len} for _ in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_vllm(srv: ServerProcess, args: argparse.Namespace, data: Path, out: Path) -> dict[str, float]:
    """One `vllm bench serve` run; vLLM's own result keys."""
    cmd = [str(Path(sys.executable).with_name("vllm")), "bench", "serve", "--base-url", srv.base_url,
           "--model", srv.served_model, *tokenizer_flags(args.model, srv.spec.vllm_args),
           "--dataset-name", "custom", "--dataset-path", str(data), "--custom-output-len", str(args.output_len),
           "--skip-chat-template", "--ignore-eos", "--num-prompts", str(args.num_prompts),
           "--request-rate", str(args.rate), "--burstiness", "10000", "--percentile-metrics", "ttft,tpot,itl",
           "--metric-percentiles", "50,99", "--save-result", "--result-dir", str(out.parent),
           "--result-filename", out.name, "--disable-tqdm"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    res = json.loads(out.read_text())
    if res["completed"] != args.num_prompts:
        raise SystemExit(f"vllm bench serve completed {res['completed']} of {args.num_prompts}; see {out}")
    return {k: float(res[k]) for k in METRICS}


def run_guidellm(srv: ServerProcess, args: argparse.Namespace, data: Path, out: Path) -> dict[str, float]:
    """One `guidellm run`; its TTFT and ITL (= vLLM's TPOT) under vLLM's key names."""
    cmd = [sys.executable, "-m", "guidellm", "run",
           "--backend", f"kind=openai_http,target={srv.base_url},request_format=/v1/completions",
           "--profile", f"kind=constant,rate={args.rate:g}",
           "--constraint", f"kind=max_requests,count={args.num_prompts}",
           "--data", f"kind=json_file,path={data}", "--output", f"kind=json,path={out}",
           "--disable-console-interactive"]
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=out.parent)
    metrics = json.loads(out.read_text())["benchmarks"][0]["metrics"]
    done, errored = metrics["request_totals"]["successful"], metrics["request_totals"]["errored"]
    # guidellm 0.8 sometimes closes a constant-rate benchmark while its last request is in flight (the server
    # answered it): tolerate one missing request, never an error.
    if errored or done < args.num_prompts - 1:
        raise SystemExit(f"guidellm: {done} of {args.num_prompts} succeeded, {errored} errored; see {out}")
    row: dict[str, float] = {}
    for ours, theirs in GUIDELLM_KEYS.items():
        stats = metrics[theirs]["successful"]
        row[f"mean_{ours}_ms"] = stats["mean"]
        row[f"median_{ours}_ms"] = stats["median"]
        row[f"p99_{ours}_ms"] = stats["percentiles"]["p99"]
    return row


def compare(runs: dict[str, list[dict[str, float]]]) -> list[dict[str, Any]]:
    """Per metric: both clients' means and ranges, their difference and the run-to-run spread (fractions)."""
    table = []
    for key in METRICS:
        v = [r[key] for r in runs["vllm"]]
        g = [r[key] for r in runs["guidellm"]]
        mv, mg = statistics.fmean(v), statistics.fmean(g)
        spread = max((max(v) - min(v)) / mv, (max(g) - min(g)) / mg)
        diff = (mg - mv) / mv
        table.append({"metric": key, "vllm_mean": mv, "vllm_min": min(v), "vllm_max": max(v), "guidellm_mean": mg,
                      "guidellm_min": min(g), "guidellm_max": max(g), "diff": diff, "spread": spread,
                      "agree": abs(diff) <= spread})
    return table


def markdown(table: list[dict[str, Any]]) -> str:
    lines = ["| metric (vLLM name) | vllm bench serve: mean [min..max] | guidellm: mean [min..max] | difference | "
             "run-to-run spread | agree |", "|---|---|---|---|---|---|"]
    lines += [f"| {t['metric']} | {t['vllm_mean']:.2f} [{t['vllm_min']:.2f}..{t['vllm_max']:.2f}] | "
              f"{t['guidellm_mean']:.2f} [{t['guidellm_min']:.2f}..{t['guidellm_max']:.2f}] | {t['diff']:+.1%} | "
              f"{t['spread']:.1%} | {'yes' if t['agree'] else 'no'} |" for t in table]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="aic:h100_sxm")
    p.add_argument("--model", default="llama-3.1-8b")
    p.add_argument("--rate", type=float, default=4.0, help="requests per second, fixed arrivals")
    p.add_argument("--num-prompts", type=int, default=100)
    p.add_argument("--input-words", type=int, default=300)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("runs/loadgen"))
    args = p.parse_args()
    args.out = args.out.resolve()  # the clients run with other working directories
    args.out.mkdir(parents=True, exist_ok=True)
    data = write_prompts(args.out / "prompts.jsonl", args.num_prompts, args.input_words, args.output_len)
    spec = ServerSpec(kind="emulated", model=args.model, profile=args.profile, log_path=args.out / "server.log",
                      vllm_args=("--max-model-len", "4096"))
    runs: dict[str, list[dict[str, float]]] = {"vllm": [], "guidellm": []}
    with ServerProcess(spec) as srv:
        for i in range(args.repeats):
            for name, run in (("vllm", run_vllm), ("guidellm", run_guidellm)):
                srv.reset_prefix_cache()
                t0 = time.monotonic()
                runs[name].append(run(srv, args, data, args.out / f"{name}-{i}.json"))
                print(f"{name} run {i}: {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    table = compare(runs)
    (args.out / "agreement.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                          "runs": runs, "table": table}, indent=2))
    print(f"{args.num_prompts} requests at {args.rate:g} req/s (fixed arrivals), {args.input_words}-word prompts, "
          f"{args.output_len} output tokens, {args.repeats} runs per client, profile {args.profile}\n")
    print(markdown(table))


if __name__ == "__main__":
    main()
