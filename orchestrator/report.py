"""Plots (PNG) and a report (Markdown + HTML) from a sweep's OUT/results.parquet."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from llm_emu.errors import ResultsError
from llm_emu.fsutil import atomic_write_text
from orchestrator.summary import best_configs

LATENCIES = (("p99_ttft_ms", "p99 TTFT (ms)"), ("p99_tpot_ms", "p99 TPOT (ms)"),
             ("p99_e2el_ms", "p99 E2EL (ms)"))
SLO_COLUMN = {"p99_ttft_ms": "slo_ttft_ms", "p99_tpot_ms": "slo_tpot_ms", "p99_e2el_ms": "slo_e2el_ms"}


def _x_rates(rates: pd.Series) -> tuple[pd.Series, list[float], list[str]]:
    """Map inf to a position right of the largest finite rate; return x values, ticks and labels."""
    finite = sorted({r for r in rates if not math.isinf(r)})
    inf_x = (finite[-1] * 1.5 if finite else 1.0)
    x = rates.map(lambda r: inf_x if math.isinf(r) else r)
    ticks = finite + ([inf_x] if any(math.isinf(r) for r in rates) else [])
    labels = [f"{t:g}" for t in finite] + (["inf"] if len(ticks) > len(finite) else [])
    return x, ticks, labels


def _per_config(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """One line per config (and per clock, when a virtual-time search was re-checked in wall-clock time)."""
    ok = df[df["status"] == "ok"]
    if "clock" in ok and ok["clock"].nunique() > 1:
        ok = ok.assign(config=ok["config"] + " [" + ok["clock"] + "]")
    return [(str(label), g.sort_values("request_rate")) for label, g in ok.groupby("config", sort=True)]


def _figure(ncols: int = 1) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(6.0 * ncols, 4.5), squeeze=False)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_latency_vs_throughput(df: pd.DataFrame, path: Path) -> Path:
    """p99 TTFT / TPOT / E2EL against output throughput, one line per config (points = rates)."""
    present = [(k, t) for k, t in LATENCIES if k in df]
    fig, axes = _figure(max(len(present), 1))
    for ax, (key, title) in zip(axes[0], present, strict=False):
        for label, g in _per_config(df):
            ax.plot(g["output_throughput"], g[key], marker="o", label=label)
        ax.set_xlabel("output throughput (tok/s)")
        ax.set_ylabel(title)
        ax.set_title(f"{title} vs throughput")
        ax.grid(alpha=0.3)
        slo_col = SLO_COLUMN[key]
        if slo_col in df and df[slo_col].notna().any():
            ax.axhline(float(df[slo_col].dropna().iloc[0]), color="red", ls="--", lw=1, label="SLO")
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def plot_vs_rate(df: pd.DataFrame, key: str, ylabel: str, path: Path, target: float | None = None) -> Path:
    """``key`` against offered request rate, one line per config."""
    fig, axes = _figure()
    ax = axes[0][0]
    x_all, ticks, labels = _x_rates(df["request_rate"])
    for label, g in _per_config(df):
        if key in g:
            ax.plot(x_all.loc[g.index], g[key], marker="o", label=label)
    finite = [t for t, lab in zip(ticks, labels, strict=True) if lab != "inf"]
    if key == "request_goodput" and finite:
        ax.plot(finite, finite, color="grey", ls=":", lw=1, label="offered rate")
    if target is not None:
        ax.axhline(target, color="red", ls="--", lw=1, label=f"target {target:g}")
    ax.set_xticks(ticks, labels)
    ax.set_xlabel("offered request rate (req/s)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{ylabel} vs request rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def _md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_none_\n"
    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    rows = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    rows += ["| " + " | ".join(cell(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join(rows) + "\n"


def _plots(df: pd.DataFrame, out: Path) -> list[tuple[str, Path]]:
    lat = plot_latency_vs_throughput(df, out / "latency_vs_throughput.png")
    plots = [("Tail latency vs throughput", lat)]
    if "request_goodput" in df and df["request_goodput"].notna().any():
        plots.append(("Goodput vs offered rate",
                      plot_vs_rate(df, "request_goodput", "goodput (req/s)", out / "goodput_vs_rate.png")))
    if "slo_attainment" in df and df["slo_attainment"].notna().any():
        target = float(df["slo_target"].dropna().iloc[0]) if df["slo_target"].notna().any() else None
        plots.append(("SLO attainment vs offered rate", plot_vs_rate(
            df, "slo_attainment", "SLO attainment", out / "slo_attainment_vs_rate.png", target)))
    plots.append(("Throughput vs offered rate", plot_vs_rate(
        df, "output_throughput", "output throughput (tok/s)", out / "throughput_vs_rate.png")))
    return plots


def _read_results(out: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """results.parquet and sweep.json; ResultsError naming the fix when one is damaged (e.g. truncated)."""
    rebuild = (f"re-run `llm-emu sweep {out / 'spec.yaml'} -o {out}`: it resumes from the per-trial files in "
               f"{out / 'results'} and rewrites it")
    try:
        df = pd.read_parquet(out / "results.parquet")
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError variants for truncated or foreign files
        raise ResultsError(f"{out / 'results.parquet'} is unreadable (truncated or not parquet: "
                           f"{type(e).__name__}); {rebuild}") from None
    try:
        manifest = json.loads((out / "sweep.json").read_text()) if (out / "sweep.json").is_file() else {}
    except ValueError as e:
        raise ResultsError(f"{out / 'sweep.json'} is unreadable ({e}); {rebuild}") from None
    return df, manifest


def write_report(out_dir: str | Path) -> Path:
    """Write the PNG plots, report.md and report.html into ``out_dir``; return the report.md path."""
    out = Path(out_dir)
    df, manifest = _read_results(out)
    name = manifest.get("name", out.name)
    plots = _plots(df, out) if (df.get("status") == "ok").any() else []
    cols = [c for c in ("config", "clock", "attempts", "error", "attempt_errors") if c in df]
    failed = df[df["status"] != "ok"].drop_duplicates("trial_hash")[cols] if "status" in df else pd.DataFrame()
    pruned = pd.DataFrame(manifest.get("pruned", []), columns=["config", "reason"])
    sections = [
        (f"Sweep report: {name}", f"{df['trial_hash'].nunique() if 'trial_hash' in df else 0} trials, "
                                 f"{len(df)} (trial, rate) rows. Data: `results.parquet`.\n"),
        ("Best configs", _md_table(best_configs(df))),
        ("Failed trials", _md_table(failed)), ("Pruned configs", _md_table(pruned)),
    ]
    md = [f"# {sections[0][0]}\n\n{sections[0][1]}"]
    md += [f"## {title}\n\n{body}" for title, body in sections[1:]]
    md += [f"## {title}\n\n![{title}]({p.name})\n" for title, p in plots]
    atomic_write_text(out / "report.md", "\n".join(md))
    page = [f"<h1>{html.escape(sections[0][0])}</h1><p>{html.escape(sections[0][1])}</p>"]
    page += [f"<h2>{html.escape(t)}</h2>{_html_table(b)}" for t, b in
             (("Best configs", best_configs(df)), ("Failed trials", failed), ("Pruned configs", pruned))]
    page += [f"<h2>{html.escape(t)}</h2><img src='{p.name}' alt='{html.escape(t)}'>" for t, p in plots]
    doc = f"<!doctype html><meta charset='utf-8'><title>{html.escape(name)}</title>" \
          f"<body style='font-family:sans-serif;max-width:1400px'>{''.join(page)}</body>"
    atomic_write_text(out / "report.html", doc)
    return out / "report.md"


def _html_table(df: pd.DataFrame) -> str:
    return "<p><i>none</i></p>" if df.empty else df.to_html(index=False, float_format=lambda v: f"{v:.4g}")
