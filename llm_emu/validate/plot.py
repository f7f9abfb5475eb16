"""Real vs emulated metrics over request rate (one panel per metric, one line style per arrival pattern)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from llm_emu.validate.errors import METRICS, arrival_label


def plot_validation(errors: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Write a PNG with real (solid) vs emulated (dashed) values and the signed error per cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m, _ in METRICS if m in set(errors["metric"])]
    ncols = 3
    nrows = (len(metrics) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.6 * nrows), squeeze=False)
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    for ax, metric in zip(axes.flat, metrics, strict=False):
        sub = errors[errors["metric"] == metric]
        for i, (b, grp) in enumerate(sorted(sub.groupby("burstiness"), key=lambda t: -t[0])):
            grp = grp.sort_values("rate")
            c = colors[i % len(colors)]
            lab = arrival_label(float(b))
            ax.plot(grp["rate"], grp["real"], "-o", color=c, label=f"real, {lab}")
            ax.plot(grp["rate"], grp["emulated"], "--x", color=c, label=f"emulated, {lab}")
            for x, y, e in zip(grp["rate"], grp["emulated"], grp["err_pct"], strict=True):
                ax.annotate(f"{e:+.1f}%", (x, y), textcoords="offset points", xytext=(0, 6), fontsize=7,
                            color=c, ha="center")
        unit = "tok/s" if metric == "Output throughput" else "ms"
        ax.set_title(metric)
        ax.set_xlabel("request rate (req/s)")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
