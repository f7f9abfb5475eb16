"""Emulated vs published: the comparable value of each published metric and the signed error table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from llm_emu.reference.rows import ReferenceRow

#: Metric families of the issue's targets -> (member metrics, target max |error| %, weight in the fit).
FAMILIES: dict[str, tuple[tuple[str, ...], float, float]] = {
    "ITL": (("mean_itl_ms", "decode_ms_per_token", "median_itl_ms"), 5.0, 1.0),
    "TPOT": (("mean_tpot_ms", "median_tpot_ms"), 5.0, 1.0),
    "E2E": (("mean_e2el_ms",), 7.0, 1.0),
    "TTFT": (("mean_ttft_ms", "median_ttft_ms"), 15.0, 0.5),
    "throughput": (("output_throughput", "total_token_throughput", "request_throughput"), 7.0, 0.5),
}
#: Informational columns: shown, never scored (they depend on the tokenizer, not on the device).
INFO_METRICS = ("total_input_tokens", "total_output_tokens")
_RESULT_KEY = {"benchmark_duration_s": "duration", "total_output_tokens": "total_output",
               "total_input_tokens": "total_input"}


def emulated_value(row: ReferenceRow, metric: str, result: Mapping[str, Any]) -> float | None:
    """The emulated counterpart of ``row.published[metric]`` from a vLLM benchmark-client result dict."""
    if metric == "decode_ms_per_token":
        # The source divides (E2E - TTFT) by its own token count; back that count out of its numbers.
        pub = row.published
        if not {"mean_e2el_ms", "mean_ttft_ms"} <= set(pub):
            return None
        tokens = (pub["mean_e2el_ms"] - pub["mean_ttft_ms"]) / pub["decode_ms_per_token"]
        return (float(result["mean_e2el_ms"]) - float(result["mean_ttft_ms"])) / tokens
    value = result.get(_RESULT_KEY.get(metric, metric))
    return None if value is None else float(value)


def signed_errors(row: ReferenceRow, result: Mapping[str, Any]) -> dict[str, float]:
    """Metric -> 100 * (emulated - published) / published, for every published metric with a counterpart."""
    out: dict[str, float] = {}
    for metric, pub in row.published.items():
        emu = emulated_value(row, metric, result)
        if emu is not None and pub and math.isfinite(emu):
            out[metric] = 100.0 * (emu - pub) / pub
    return out


def family_of(metric: str) -> str | None:
    """The target family a metric is scored in (None: not scored)."""
    for family, (members, _, _) in FAMILIES.items():
        if metric in members:
            return family
    return None


def row_family_errors(errors: Mapping[str, float]) -> dict[str, float]:
    """Family -> the row's signed error on that family's first published member."""
    out: dict[str, float] = {}
    for family, (members, _, _) in FAMILIES.items():
        hit = next((m for m in members if m in errors), None)
        if hit is not None:
            out[family] = errors[hit]
    return out


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:+.1f}"


def error_table(rows: Sequence[ReferenceRow], errors: Mapping[str, Mapping[str, float]]) -> str:
    """Markdown: one line per row (signed % error per family), then mean |error| and the target per family."""
    fams = list(FAMILIES)
    lines = ["| row | " + " | ".join(f"{f} %" for f in fams) + " |", "|---|" + "---:|" * len(fams)]
    per_family: dict[str, list[float]] = {f: [] for f in fams}
    for row in rows:
        fe = row_family_errors(errors.get(row.row_id, {}))
        for f, v in fe.items():
            per_family[f].append(v)
        lines.append(f"| {row.row_id} | " + " | ".join(_fmt(fe.get(f)) for f in fams) + " |")
    lines.append("| mean abs | " + " | ".join(
        f"{sum(map(abs, v)) / len(v):.1f}" if v else "" for v in per_family.values()) + " |")
    lines.append("| target | " + " | ".join(f"<= {FAMILIES[f][1]:g}" for f in fams) + " |")
    return "\n".join(lines)


def metric_table(rows: Sequence[ReferenceRow], results: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown: every published metric of every row, published vs emulated and the signed error."""
    lines = ["| row | metric | published | emulated | error % |", "|---|---|---:|---:|---:|"]
    for row in rows:
        res = results.get(row.row_id)
        for metric, pub in row.published.items():
            emu = emulated_value(row, metric, res) if res is not None else None
            err = 100.0 * (emu - pub) / pub if emu is not None and pub else None
            tag = " (info)" if metric in INFO_METRICS else ""
            lines.append(f"| {row.row_id} | {metric}{tag} | {pub:.6g} | "
                         f"{'' if emu is None else f'{emu:.6g}'} | {_fmt(err)} |")
    return "\n".join(lines)


def _load(row: ReferenceRow) -> float:
    return row.request_rate if math.isfinite(row.request_rate) else float(row.max_concurrency or 0)


def load_series(rows: Sequence[ReferenceRow]) -> list[list[ReferenceRow]]:
    """Rows that differ only in load (rate or concurrency), lightest first; series of 2+ rows only."""
    groups: dict[tuple[object, ...], list[ReferenceRow]] = {}
    for r in rows:
        key = (r.source_id, r.gpu, r.emu_model, r.serve_flags, r.dataset, r.input_len, r.output_len, r.prefix_len,
               r.serve_flags_published)
        groups.setdefault(key, []).append(r)
    return [sorted(g, key=_load) for g in groups.values() if len({_load(r) for r in g}) > 1]


def itl_growth(series: Sequence[ReferenceRow], results: Mapping[str, Mapping[str, Any]]) -> tuple[float, float]:
    """(published, emulated) % growth of the ITL-family metric from the lightest to the heaviest row."""
    first, last = series[0], series[-1]
    metric = next(m for m in FAMILIES["ITL"][0] if m in first.published and m in last.published)
    pub = 100.0 * (last.published[metric] / first.published[metric] - 1)
    lo = emulated_value(first, metric, results[first.row_id])
    hi = emulated_value(last, metric, results[last.row_id])
    emu = 100.0 * (hi / lo - 1) if lo and hi else math.nan
    return pub, emu


def growth_table(rows: Sequence[ReferenceRow], results: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown: ITL growth with load, published vs emulated, per series of rows that differ only in load."""
    lines = ["| series (light -> heavy) | load | published ITL growth % | emulated ITL growth % |",
             "|---|---|---:|---:|"]
    for s in load_series(rows):
        if not all(r.row_id in results for r in s):
            continue
        pub, emu = itl_growth(s, results)
        load = f"{_load(s[0]):g} -> {_load(s[-1]):g} " + ("req/s" if math.isfinite(s[0].request_rate) else "conc.")
        lines.append(f"| {s[0].row_id} -> {s[-1].row_id} | {load} | {pub:+.1f} | {emu:+.1f} |")
    return "\n".join(lines)
