"""Reference rows and a synthetic evaluator with a known truth (no emulator needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llm_emu.reference.fit import HOST_PARAM, HOST_STEP_PARAM, HOST_STEP_REQ_PARAM, IDENTITY, Params, split_params
from llm_emu.reference.rows import ReferenceRow

TRUTH: Params = {**IDENTITY, "scale": 1.15, "step_ms": 0.9, "prefill_ms_per_ktok": 3.0, HOST_PARAM: 12.0,
                  HOST_STEP_PARAM: 0.6, HOST_STEP_REQ_PARAM: 0.05}


def make_row(row_id: str, source_id: str = "src", published: dict[str, float] | None = None,
             **fields: Any) -> ReferenceRow:
    base: dict[str, Any] = dict(
        row_id=row_id, source_id=source_id, source="test", gpu="h100_sxm", model="m", emu_model="llama-3.1-8b",
        dtype="bfloat16", vllm_version="0.15.1", api="completions", dataset="random", arrival="closed-loop",
        serve_flags=("--max-num-seqs", "128"), published=published or {"mean_itl_ms": 7.0}, input_len=512,
        output_len=128, num_prompts=100, max_concurrency=4, ignore_eos="true")
    base.update(fields)
    return ReferenceRow(**base)


def _shape(row: ReferenceRow) -> tuple[float, float, float, float]:
    """Per-row stand-ins for the step mix: aic ms of a decode step, prefill ktokens per token, TTFT aic ms,
    requests per step."""
    k = sum(map(ord, row.row_id)) % 7
    return 5.5 + 0.4 * k, 0.05 + 0.03 * k, 9.0 + 2.0 * k, 1.0 + 5.0 * k


def synthetic_metrics(row: ReferenceRow, params: Mapping[str, float]) -> dict[str, float]:
    """Metrics as a smooth function of the parameters (what a replay would return)."""
    t, (host_ms, host_step, host_step_req) = split_params(params)
    aic_ms, pk, ttft_aic, batch = _shape(row)
    sync = 0.0 if row.async_scheduling else 1.0  # host step time shows with sync scheduling only
    itl = t.scale * aic_ms + t.step_ms + t.prefill_ms_per_ktok * pk + sync * (host_step + host_step_req * batch)
    ttft = host_ms + t.scale * ttft_aic + t.step_ms + t.prefill_ms_per_ktok * 0.5
    return {"mean_itl_ms": itl, "mean_tpot_ms": 0.97 * itl, "mean_ttft_ms": ttft,
            "mean_e2el_ms": ttft + 127 * 0.97 * itl}


def truth_rows(n: int = 6, sources: int = 3) -> list[ReferenceRow]:
    rows = []
    for i in range(n):
        version = "0.11.0" if i % 3 == 1 else "0.15.1"  # before 0.14: sync scheduling, host step time shows
        r = make_row(f"{'sync' if i % 3 == 1 else 'r'}{i}", source_id=f"s{i % sources}", vllm_version=version)
        m = synthetic_metrics(r, TRUTH)
        rows.append(make_row(r.row_id, r.source_id, vllm_version=version,
                             published={k: m[k] for k in ("mean_itl_ms", "mean_ttft_ms", "mean_e2el_ms")}))
    return rows


class RecordingEvaluator:
    """Evaluator over synthetic_metrics that records which rows each call saw."""

    def __init__(self) -> None:
        self.calls: list[tuple[Params, tuple[str, ...]]] = []

    def __call__(self, terms: Params, rows: Sequence[ReferenceRow]) -> Mapping[str, Mapping[str, Any]]:
        self.calls.append((terms, tuple(r.row_id for r in rows)))
        return {r.row_id: synthetic_metrics(r, terms) for r in rows}
