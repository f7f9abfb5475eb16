"""Full fidelity run on the CPU hardware loop: capture a full profile from real vLLM-CPU, then validate.

    .venv/bin/python bench/fidelity.py --out runs/fidelity [--rates 1,2,3,4,5] [--num-prompts 500]

Steps (each skipped when its output already exists, so an interrupted run resumes):
  1. `llm-emu profile --model tiny-llama --out OUT/pack` (full capture plan);
  2. `llm-emu validate --profile OUT/pack --rates ... --burstiness 1,0.25 --num-prompts N --out OUT/validate`;
  3. prints OUT/validate/errors.md (Table-1-shaped signed % errors) and the wall time of each step.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd: list[str]) -> float:
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, cwd=ROOT)
    return time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/fidelity")
    p.add_argument("--model", default="tiny-llama")
    p.add_argument("--rates", default="2,4,6,8,10,12")
    p.add_argument("--burstiness", default="1,0.25")
    p.add_argument("--num-prompts", type=int, default=500)
    p.add_argument("--sharegpt-rates", default="2,4,6,8,10,12,inf", help="ShareGPT rates of the capture")
    p.add_argument("--sharegpt-prompts", type=int, default=300, help="ShareGPT prompts per capture rate")
    p.add_argument("--cells-per-start", type=int, default=2,
                   help="alternate real/emulated every K cells (less drift between the two sides)")
    p.add_argument("--profile", default=None, help="use this pack instead of capturing one")
    p.add_argument("--quick-capture", action="store_true", help="capture with --quick (reduced run)")
    args, vllm_args = p.parse_known_args(argv)
    out = (ROOT / args.out).resolve() if not Path(args.out).is_absolute() else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "llm_emu.cli"]
    times: dict[str, float] = {}
    pack = Path(args.profile) if args.profile else out / "pack"
    if not (pack / "steps.parquet").is_file():
        cmd = [*cli, "profile", "--model", args.model, "--out", str(pack), "--sharegpt-rates", args.sharegpt_rates,
               "--sharegpt-prompts", str(args.sharegpt_prompts), "--keep-raw", *vllm_args]
        times["capture_s"] = _run([*cmd, "--quick"] if args.quick_capture else cmd)
    val = out / "validate"
    if not (val / "errors.md").is_file():
        times["validate_s"] = _run([*cli, "validate", "--profile", str(pack), "--model", args.model,
                                    "--rates", args.rates, "--burstiness", args.burstiness,
                                    "--num-prompts", str(args.num_prompts), "--out", str(val),
                                    "--cells-per-start", str(args.cells_per_start), *vllm_args])
    print((val / "errors.md").read_text())
    print("wall times:", {k: f"{v:.0f} s" for k, v in times.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
