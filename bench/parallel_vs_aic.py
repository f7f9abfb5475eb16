"""Llama-3.1-70B on H100 at TP 4, TP 8 and DP 2 x TP 4: the emulator next to aiconfigurator's own estimate.

    .venv/bin/python bench/parallel_vs_aic.py [--concurrency 32] [--isl 1024] [--osl 128] [--out DIR]

For every layout one emulated server (`llm-emu serve --profile aic:h100_sxm -tp T -dp D`) gets one burst of
``concurrency`` requests (random prompts of ``isl`` tokens, ``osl`` output tokens, EOS ignored), measured by
vLLM's own benchmark client. aiconfigurator's side is its static-batch estimate for the same layout
(``EngineHandle.run_static`` with ``concurrency / DP`` requests per replica) and its KV block estimate
(``estimate_num_gpu_blocks``, times DP: vLLM's metric sums the replicas). The emulator runs vLLM's real
scheduler (chunked prefill mixed with decodes, 8192-token steps), aiconfigurator a static batch (all prefills,
then all decodes): expect the same order of magnitude and the same ranking, not equal numbers. Latencies are
wall-clock on this host: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_emu.benchclient import Workload, run_benchmark
from llm_emu.models import MODELS_DIR, resolve_model
from llm_emu.server import ServerProcess, ServerSpec

ROOT = Path(__file__).resolve().parent.parent
MODEL = "llama-3.1-70b"
SYSTEM = "h100_sxm"


@dataclass(frozen=True)
class Layout:
    """One serving layout: DP replicas of TP GPUs each."""

    tp: int
    dp: int = 1

    @property
    def label(self) -> str:
        return f"TP{self.tp}" if self.dp == 1 else f"DP{self.dp}xTP{self.tp}"

    def flags(self) -> tuple[str, ...]:
        return ("--tensor-parallel-size", str(self.tp), "--data-parallel-size", str(self.dp))


LAYOUTS = (Layout(4), Layout(8), Layout(4, 2))


def _num_gpu_blocks(base_url: str) -> int:
    """vLLM's own view of the KV capacity (its cache_config_info metric; with DP the sum over the replicas)."""
    text = urllib.request.urlopen(f"{base_url}/metrics", timeout=30).read().decode()
    found = re.findall(r'^vllm:cache_config_info\{[^}]*num_gpu_blocks="(\d+)"', text, re.MULTILINE)
    return int(found[0]) if found else -1


def emulate(layout: Layout, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One burst against an emulated server with this layout."""
    spec = ServerSpec(kind="emulated", model=MODEL, profile=f"aic:{SYSTEM}", log_path=out / f"{layout.label}.log",
                      vllm_args=(*layout.flags(), "--max-model-len", "4096"))
    workload = Workload(dataset="random", num_prompts=args.concurrency, request_rate=float("inf"),
                        max_concurrency=args.concurrency, random_input_len=args.isl, random_output_len=args.osl,
                        ignore_eos=True, seed=0)
    with ServerProcess(spec) as srv:
        blocks = _num_gpu_blocks(srv.base_url)
        r = run_benchmark(srv.base_url, srv.served_model, workload, tokenizer_model=MODEL,
                          result_dir=out / layout.label)
    return {"blocks": blocks, "max_ttft_ms": max(r["ttfts"]) * 1e3, "mean_tpot_ms": r["mean_tpot_ms"],
            "output_tok_s": r["output_throughput"]}


def estimate(layout: Layout, args: argparse.Namespace) -> dict[str, Any]:
    """aiconfigurator's static-batch estimate and KV block count for the same layout."""
    from aiconfigurator_core.sdk import estimate_num_gpu_blocks
    from aiconfigurator_core.sdk.engine import EngineHandle

    model_dir = str(MODELS_DIR / MODEL)  # the shipped config.json; its architecture is aiconfigurator's Llama
    batch = max(1, args.concurrency // layout.dp)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        handle = EngineHandle.compile(model_dir, SYSTEM, "vllm", backend_version="current", tp_size=layout.tp)
        ctx_ms, gen_ms, total_ms = handle.run_static(batch_size=batch, isl=args.isl, osl=args.osl)
        blocks = estimate_num_gpu_blocks(model_dir, SYSTEM, "vllm", "current", scheduler_block_size=16,
                                         max_num_tokens=8192, max_batch_size=1024, memory_fraction_kind="of_total",
                                         memory_fraction_value=0.92, tp_size=layout.tp)
    return {"blocks": layout.dp * blocks, "max_ttft_ms": ctx_ms, "mean_tpot_ms": gen_ms / max(1, args.osl - 1),
            "output_tok_s": layout.dp * batch * args.osl / (total_ms / 1e3)}


def table(rows: list[tuple[Layout, dict[str, Any], dict[str, Any]]], args: argparse.Namespace) -> str:
    """Markdown table: emulator | aiconfigurator | ratio, per metric and layout."""
    metrics = (("blocks", "KV blocks, all replicas"), ("max_ttft_ms", "last TTFT ms"),
               ("mean_tpot_ms", "mean TPOT ms"), ("output_tok_s", "output tok/s"))
    head = (f"Llama-3.1-70B, {SYSTEM}, one burst of {args.concurrency} x ({args.isl} in, {args.osl} out)\n\n"
            "| layout | metric | emulator | aiconfigurator | emu/aic |\n|---|---|---:|---:|---:|")
    lines = [head]
    for layout, emu, aic in rows:
        for key, name in metrics:
            ratio = emu[key] / aic[key] if aic[key] else float("nan")
            lines.append(f"| {layout.label} | {name} | {emu[key]:,.1f} | {aic[key]:,.1f} | {ratio:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--isl", type=int, default=1024)
    p.add_argument("--osl", type=int, default=128)
    p.add_argument("--layouts", default="TP4,TP8,DP2xTP4", help="subset of TP4,TP8,DP2xTP4")
    p.add_argument("--out", default="runs/parallel_vs_aic")
    args = p.parse_args(argv)
    out = Path(args.out) if Path(args.out).is_absolute() else ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    resolve_model(MODEL)
    wanted = set(args.layouts.split(","))
    rows = [(lay, emulate(lay, args, out), estimate(lay, args)) for lay in LAYOUTS if lay.label in wanted]
    text = table(rows, args)
    (out / "table.md").write_text(text + "\n")
    (out / "rows.json").write_text(json.dumps([{"layout": lay.label, "emulator": e, "aiconfigurator": a}
                                               for lay, e, a in rows], indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
