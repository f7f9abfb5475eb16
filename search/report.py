"""Search outputs: result rows, `vllm serve` command lines, Pareto table, plots, OUT/search.md."""

from __future__ import annotations

import json
import shlex
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from llm_emu.flags import render_flags
from llm_emu.fsutil import atomic_write_parquet, atomic_write_text
from search.objectives.base import MEASUREMENTS_ATTR
from search.storage import SKIPPED_ATTR
from search.task import CONSTRAINTS_ATTR

if TYPE_CHECKING:
    from search.task import SearchResult

ENGINE_PREFIX = "engine."
"""Column prefix of effective engine args, as in the orchestrator's result rows."""


def vllm_serve_command(model: str, engine_args: Mapping[str, Any]) -> str:
    """A ready-to-run `vllm serve` line, engine args sorted by name (see llm_emu.flags.render_flags)."""
    return shlex.join(["vllm", "serve", model, *render_flags(dict(sorted(engine_args.items())))])


def _status(t: FrozenTrial) -> tuple[str, str | None]:
    if "infeasible" in t.user_attrs:
        return "pruned", "; ".join(t.user_attrs["infeasible"])
    if t.state == TrialState.FAIL:
        return "failed", t.user_attrs.get("error", "controller died")
    return "ok", None


def trial_rows(t: FrozenTrial) -> list[dict[str, Any]]:
    """One row per (trial, measured rate): engine.* config columns + vLLM metric keys + status/error."""
    status, error = _status(t)
    engine = t.user_attrs.get("engine_args", {})
    base: dict[str, Any] = {
        "trial_number": t.number,
        "trial_hash": t.user_attrs.get("config_key"),
        "state": t.state.name,
        "baseline": bool(t.user_attrs.get("baseline")),
        "config": " ".join(f"{k}={v}" for k, v in sorted(t.user_attrs.get("overrides", {}).items())) or "base",
        "engine_args": json.dumps(engine, sort_keys=True),
        "status": status,
        "error": error,
        "feasible": all(c <= 0 for c in t.user_attrs.get(CONSTRAINTS_ATTR, ())),
    }
    base.update({ENGINE_PREFIX + k: v for k, v in engine.items()})
    for i, v in enumerate(t.values or ()):
        base[f"objective_{i}"] = v
    measured = t.user_attrs.get(MEASUREMENTS_ATTR, [])
    if not measured:
        return [base]
    return [{**base, "request_rate": m["rate"], **{k: v for k, v in m.items() if k != "rate"}} for m in measured]


def result_frame(result: SearchResult) -> pd.DataFrame:
    """All finished trials' rows (skipped duplicates and still-running trials left out)."""
    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    rows = [
        r
        for t in result.study.get_trials(deepcopy=False)
        if t.state in done and SKIPPED_ATTR not in t.user_attrs
        for r in trial_rows(t)
    ]
    df = pd.DataFrame(rows)
    for col in df.columns:  # mixed-type engine columns (None in one trial, 512 in another) for parquet
        if df[col].dtype == object:
            df[col] = df[col].map(lambda v: v if v is None or isinstance(v, str) else json.dumps(v))
    return df


def _relative(t: FrozenTrial, base: FrozenTrial | None, i: int = 0) -> str:
    if base is None or base.values is None or not base.values[i]:
        return "n/a"
    return f"{100.0 * (t.values[i] / base.values[i] - 1):+.1f} %"


def _trial_table(result: SearchResult) -> str:
    names = result.study.metric_names or [f"objective_{i}" for i in range(len(result.task.search.directions))]
    head = "| trial | " + " | ".join(names) + " | vs baseline | overrides |\n"
    head += "|---" * (len(names) + 3) + "|\n"
    lines = []
    for t in result.best:
        vals = " | ".join(f"{v:.4g}" for v in t.values)
        over = json.dumps(t.user_attrs.get("overrides", {}), sort_keys=True)
        lines.append(f"| {t.number} | {vals} | {_relative(t, result.baseline)} | `{over}` |")
    return head + "\n".join(lines) + "\n"


def _plots(result: SearchResult, out: Path, log: Callable[[str], None]) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    study, files = result.study, {}
    pareto = result.task.search.objective == "pareto"
    plots: dict[str, Callable[[], Any]] = {
        "history": (lambda: ovm.plot_pareto_front(study)) if pareto else (lambda: ovm.plot_optimization_history(study)),
        "importance": lambda: ovm.plot_param_importances(study, target=(lambda t: t.values[0]) if pareto else None),
    }
    for name, draw in plots.items():
        path = out / f"search_{name}.png"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = draw()
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.tight_layout()
            fig.savefig(path, dpi=110)
            plt.close(fig)
            files[name] = path
        except (ValueError, RuntimeError, ZeroDivisionError) as e:
            # Too few complete trials (or a constant objective) leave nothing to plot: not an error.
            log(f"search: no {name} plot ({e})")
    return files


def write_report(result: SearchResult, log: Callable[[str], None] = print, *, report: bool = True) -> dict[str, Path]:
    """Write OUT/search_results.{parquet,csv} and, with ``report``, PNG plots and OUT/search.md; print the best
    config(s) (and the wall-clock re-check next to them)."""
    out = result.task.out_dir
    out.mkdir(parents=True, exist_ok=True)
    files = {"rows_parquet": out / "search_results.parquet", "rows_csv": out / "search_results.csv"}
    df = result_frame(result)
    atomic_write_parquet(files["rows_parquet"], df)
    atomic_write_text(files["rows_csv"], df.to_csv(index=False))
    commands = [vllm_serve_command(result.task.model, t.user_attrs.get("engine_args", {})) for t in result.best]
    if report:
        files.update(_plots(result, out, log))
        files["markdown"] = out / "search.md"
        atomic_write_text(files["markdown"], _markdown(result, commands, files))
    for cmd in commands:
        log(f"search: best config -> {cmd}")
    if result.verified:
        log("search: wall-clock re-check of the best configs:\n" + verify_table(result))
    log(f"search: inspect with: optuna-dashboard {result.task.storage_url}")
    return files


def _pct(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or not a else f"{100.0 * (b / a - 1):+.1f} %"


def verify_table(result: SearchResult) -> str:
    """Markdown table: each re-checked config's virtual-time and wall-clock numbers side by side."""
    metric = result.task.search.metric
    head = (f"| trial | rate | {metric} virtual | {metric} wall | diff | SLO attainment virtual | "
            "SLO attainment wall | overrides |\n" + "|---" * 8 + "|\n")
    trials = {t.number: t for t in result.study.get_trials(deepcopy=False)}
    lines = []
    for number, walls in sorted(result.verified.items()):
        measured = {float(m["rate"]): m for m in trials[number].user_attrs.get(MEASUREMENTS_ATTR, [])}
        over = json.dumps(trials[number].user_attrs.get("overrides", {}), sort_keys=True)
        for rate, wall in sorted(walls.items()):
            virt = measured.get(rate, {})
            v, w = virt.get(metric), wall.get(metric)
            lines.append(f"| {number} | {rate:g} | {_num(v)} | {_num(w)} | {_pct(v, w)} | "
                         f"{_num(virt.get('slo_attainment'))} | {_num(wall.get('slo_attainment'))} | `{over}` |")
        if not walls:
            lines.append(f"| {number} | - | - | - | - | - | - | `{over}` (wall-clock run failed) |")
    return head + "\n".join(lines) + "\n"


def _num(v: Any) -> str:
    return "-" if v is None else f"{float(v):.4g}"


def _markdown(result: SearchResult, commands: list[str], files: dict[str, Path]) -> str:
    spec, base = result.task.search, result.baseline
    title = "Pareto front" if spec.objective == "pareto" else "Best configuration"
    base_line = f"values {list(base.values)}" if base and base.values else "not available"
    imgs = "".join(f"![{k}]({p.name})\n" for k, p in files.items() if p.suffix == ".png")
    cmds = "\n".join(commands) or "# no feasible configuration found"
    verify = ""
    if result.verified:
        verify = ("## Wall-clock re-check\n\nThe best configs of this virtual-time search, run again in wall-clock "
                  f"time:\n\n{verify_table(result)}\n")
    return (
        f"# Search `{result.task.study_name}`\n\n"
        f"objective: **{spec.objective}**, sampler: {spec.sampler_name}, clock: {result.task.clock}, "
        f"trials finished: {len(result.study.trials)} (n_trials={spec.n_trials})\n\n"
        f"Baseline (vLLM defaults for the searched args): {base_line}\n\n"
        f"## {title}\n\n{_trial_table(result)}\n"
        f"```sh\n{cmds}\n```\n\n{verify}{imgs}\n"
        f"Dashboard: `optuna-dashboard {result.task.storage_url}`\n"
    )
