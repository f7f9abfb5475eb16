"""The validation report: errors.parquet, step_errors.parquet, errors.md and validation.png from results.parquet.

Sections of ``errors.md``: the signed % error table (Table-1 shape; ``±`` the 95 % interval with repeats), the
noise floor with a per-cell verdict (where the real side ran twice per cell), every cell against its goal
(met, or unresolvable because the noise floor is above the goal, or missed), the TTFT split from vLLM's own
request timing, the step-level oracle accuracy per batch-shape bucket, and the raw values.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from llm_emu.fsutil import atomic_write_parquet, atomic_write_text
from llm_emu.validate.errors import KIND_EMU, KIND_REAL, error_frame
from llm_emu.validate.steps import step_report, warmup_markdown
from llm_emu.validate.tables import (
    GOALS_SECTION,
    GOALS_TEXT,
    cell_label,
    error_table,
    goal_markdown,
    markdown_table,
    noise_markdown,
    values_table,
    wide,
)

#: TTFT parts (label, how to compute it from a results row's means in ms).
TTFT_PARTS: tuple[tuple[str, str], ...] = (
    ("client TTFT", "mean_ttft_ms"),
    ("queue", "server_queue_ms"),
    ("prefill", "server_prefill_ms"),
    ("host path", "host"),
    ("HTTP + client", "client"),
)


def _ttft_parts(mean: pd.Series) -> dict[str, float]:
    get = {k: float(mean.get(k, math.nan)) for k in ("mean_ttft_ms", "server_ttft_ms", "server_queue_ms",
                                                     "server_prefill_ms")}
    get["host"] = get["server_ttft_ms"] - get["server_queue_ms"] - get["server_prefill_ms"]
    get["client"] = get["mean_ttft_ms"] - get["server_ttft_ms"]
    return {label: get[key] for label, key in TTFT_PARTS}


def ttft_markdown(results: pd.DataFrame) -> str:
    """Mean TTFT split into queue / prefill / host path / HTTP+client, real vs emulated, per cell (ms)."""
    if "server_ttft_ms" not in results.columns:
        return "(vLLM's /metrics was not scraped)\n"
    head = "| cell | " + " | ".join(f"{label} real / emulated" for label, _ in TTFT_PARTS) + " |"
    lines = [head, "|---|" + "---:|" * len(TTFT_PARTS)]
    for (burst, rate), cell in results.groupby(["burstiness", "rate"], sort=False):
        means = {k: _ttft_parts(g.mean(numeric_only=True)) for k, g in cell.groupby("kind")}
        if KIND_REAL not in means or KIND_EMU not in means:
            continue
        parts = [f"{means[KIND_REAL][label]:.1f} / {means[KIND_EMU][label]:.1f}" for label, _ in TTFT_PARTS]
        lines.append(f"| {cell_label(burst, rate)} | " + " | ".join(parts) + " |")
    return "\n".join(lines) + "\n"


def _ordered(results: pd.DataFrame) -> pd.DataFrame:
    return results.sort_values(["burstiness", "rate"], ascending=[False, True], kind="stable")


def pack_oracle(profile: str | None) -> Any | None:
    """The pack's own oracle (for the step report); None when there is no usable pack."""
    if not profile or not Path(profile).is_dir():
        return None
    from llm_emu.oracle import create_oracle
    from llm_emu.profile.pack import load_pack

    return create_oracle(load_pack(profile), None, seed=0)


def report(out: Path, title: str, command: str = "", profile: str | None = None, preamble: str = "") -> str:
    """Write errors.parquet, step_errors.parquet, errors.md and validation.png; return the markdown."""
    from llm_emu.validate.plot import plot_validation

    results = _ordered(pd.read_parquet(out / "results.parquet"))
    errors = error_frame(results)
    atomic_write_parquet(out / "errors.parquet", errors)
    oracle = pack_oracle(profile)
    steps, steps_md = step_report(out, results, oracle)
    warm_md = warmup_markdown(out, oracle)
    atomic_write_parquet(out / "step_errors.parquet", steps)
    ci = wide(errors, "err_ci95").astype(float) if not errors.empty else None
    md = [f"# {title}\n", *([f"```\n{command}\n```\n"] if command else []), *([preamble] if preamble else []),
          "Signed % error of the emulator vs real vLLM, `100 * (emulated - real) / real` (real = mean of the real "
          "runs around the emulated one; `±` = 95 % interval over repeats):\n",
          markdown_table(error_table(errors), ci=ci),
          "\n## Noise floor (real vs real)\n",
          "Per cell: the noise floor in % (two standard deviations of the error that an emulator "
          "indistinguishable from real vLLM would show, from the real side's A/A differences), `in`/`OUT` = "
          "|error| within it or not, `*` = the floor is above the goal:\n",
          noise_markdown(errors),
          f"\n{GOALS_SECTION}\n", GOALS_TEXT, goal_markdown(errors),
          "\n## TTFT split (vLLM's request timing, mean ms)\n", ttft_markdown(results),
          "\n## Step latency per batch shape (all cells)\n", steps_md,
          *(["\n## Warm-up after an idle device\n", warm_md] if warm_md else []),
          "\n## Values\n", values_table(errors)]
    text = "\n".join(md)
    atomic_write_text(out / "errors.md", text)
    if not errors.empty:
        plot_validation(errors, out / "validation.png", title)
    return text
