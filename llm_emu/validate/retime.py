"""Was it the emulator or the device? A validation's emulated side replayed at the device's measured speed.

On a CPU "device" the speed of the real server is not constant: the same decode step of the same model can take
4.4 ms in one half-minute and 7.7 ms in the next (other tenants of the host, frequency), and the host work
between steps slows by the same factor. A pack captured in a fast period then makes the emulator look
optimistic in every cell measured in a slow one, although it reproduces the pack exactly. This module separates
the two:

* ``device_speed``: per real run of a validation, its device time over what the pack's oracle expects for
  the same steps (at each step's own features): 1.0 = the device ran as fast as when the pack was captured.
  It holds the device's drift and the pack's mean error at the cell's mix of batch shapes together; the
  per-bucket oracle errors of the step report tell them apart (a drift moves every bucket alike).
* ``replay``: every cell of the validation run again through the emulator in virtual time (deterministic,
  independent of this machine's load), once with the pack as captured and once *retimed*: every step latency
  of the pack and every host term multiplied by the cell's measured device speed (the mean over its real runs).

The retimed errors are what is left once the device's drift is taken out: the emulator's scheduling, queueing,
batching and host model against real vLLM at the speed the device actually had. They use the real runs' step
traces (one number per cell), so they are a diagnosis of a validation, not an independent check of the pack;
the pack's own accuracy is the step-level table of the validation report.

``python -m llm_emu.validate.retime OUT`` prints both tables for an existing validation directory.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llm_emu.errors import EmuError
from llm_emu.validate.errors import KIND_EMU, KIND_REAL
from llm_emu.virtual.host import COUNTS, HostModel

KIND_VIRTUAL = "virtual"
"""Rows of the replay with the pack as captured."""
KIND_RETIMED = "virtual-retimed"
"""Rows of the replay with the pack and host terms at the device's measured speed."""
MIN_STEPS = 50
"""A real run with fewer traced steps gets no speed (its cell is replayed at the mean of the others)."""
CELL = ["burstiness", "rate"]
RESULTS = "retime.parquet"
"""The replay's rows in the validation directory."""


def device_speed(steps: pd.DataFrame, oracle: Any) -> pd.DataFrame:
    """Per real run: ``speed`` = sum of measured / sum of expected step latencies, and ``n`` steps.

    Args:
        steps: attributed steps (``llm_emu.validate.steps.attribute``) of both sides.
        oracle: the pack's latency oracle (``expected(StepFeatures)`` in seconds).
    """
    from llm_emu.validate.steps import FEATURES, oracle_expected

    cols = [*CELL, "repeat", "run", "n", "speed"]
    real = steps[steps["kind"] == KIND_REAL] if not steps.empty else steps
    if real.empty:
        return pd.DataFrame(columns=cols)
    real = real[real["latency_s"] > 0].dropna(subset=FEATURES)
    real = real.assign(expected=oracle_expected(real, oracle))
    real = real[np.isfinite(real["expected"]) & (real["expected"] > 0)]
    rows = []
    for (burst, rate, rep, run), g in real.groupby([*CELL, "repeat", "run"]):
        # device time of the run / what the pack expects for the same steps: the mean step (what TPOT and
        # throughput follow), slow outliers included
        rows.append({"burstiness": burst, "rate": rate, "repeat": rep, "run": run, "n": len(g),
                     "speed": float(g["latency_s"].sum() / g["expected"].sum()) if len(g) >= MIN_STEPS
                     else float("nan")})
    return pd.DataFrame(rows, columns=cols)


def cell_speeds(speeds: pd.DataFrame) -> dict[tuple[float, float], float]:
    """(burstiness, rate) -> mean device speed of the cell's real runs (cells without one: the overall mean)."""
    if speeds.empty or speeds["speed"].isna().all():
        raise EmuError("no real step trace with enough steps to measure the device's speed; validate without "
                       "--no-step-trace")
    overall = float(speeds["speed"].mean())
    return {(float(b), float(r)): float(g["speed"].mean()) if g["speed"].notna().any() else overall
            for (b, r), g in speeds.groupby(CELL)}


def scaled_host(host: HostModel, factor: float) -> HostModel:
    """Every host time term multiplied by ``factor`` (the source line says so)."""
    times = {f.name: getattr(host, f.name) * factor for f in fields(HostModel) if f.name not in ("source", *COUNTS)}
    return replace(host, **times, source=f"{host.source}, x{factor:.3f} (device speed)")


def retimed_pack(pack_dir: Path, factor: float, dest: Path) -> Path:
    """A copy of the pack at ``dest`` with every measured step latency multiplied by ``factor``."""
    from llm_emu.profile.pack import ProfilePack, load_pack, save_pack

    pack = load_pack(pack_dir)
    steps = pack.steps.assign(latency_us=pack.steps["latency_us"] * factor)
    prov = replace(pack.meta.provenance, method=f"{pack.meta.provenance.method}; step latencies x{factor:.4f}")
    meta = replace(pack.meta, provenance=prov)
    return save_pack(ProfilePack(meta=meta, steps=steps, requests=pack.requests), dest)


def _validate_args(out: Path) -> argparse.Namespace:
    """The validation's own arguments (its recorded command line in ``validate.json``); ``vllm_args``: the
    `vllm serve` flags it passed to both servers."""
    from llm_emu.validate.cli import add_cli_args

    meta = json.loads((out / "validate.json").read_text()) if (out / "validate.json").is_file() else {}
    argv: list[str] = meta.get("argv", [])
    argv = argv[argv.index("validate") + 1:] if "validate" in argv else []
    parser = argparse.ArgumentParser(add_help=False)
    add_cli_args(parser)
    # --profile/--out are required by the parser; the recorded ones (last wins) replace these placeholders
    args, extra = parser.parse_known_args(["--profile", "", "--out", "", *argv])
    args.vllm_args = extra
    return args


def replay(out: Path, profile: Path, model: str, host: HostModel, *, retime: bool = True,
           work: Path | None = None) -> pd.DataFrame:
    """Virtual-time rows (vLLM's result keys plus kind/burstiness/rate/repeat/run/speed) for every cell."""
    from llm_emu.benchclient import Workload, scalar_part
    from llm_emu.validate.report import pack_oracle
    from llm_emu.validate.steps import attribute, load_steps
    from llm_emu.virtual import VirtualCell, run_virtual_cells

    if not (out / "results.parquet").is_file():
        raise EmuError(f"{out} has no results.parquet; give the --out directory of an `llm-emu validate` run")
    results = pd.read_parquet(out / "results.parquet")
    real = results[results["kind"] == KIND_REAL]
    if real.empty:
        raise EmuError(f"{out}: no real runs in results.parquet; run `llm-emu validate` first")
    va = _validate_args(out)
    cells = sorted({(float(b), float(r), int(n)) for b, r, n in
                    real[["burstiness", "rate", "num_prompts"]].itertuples(index=False)})
    work = work or out / "retime"
    # (kind, device speed, cells): one runner for the pack as captured, one per cell retimed (its own pack)
    jobs: list[tuple[str, float, list[tuple[float, float, int]]]] = [(KIND_VIRTUAL, 1.0, cells)]
    if retime:
        speeds = cell_speeds(device_speed(attribute(load_steps(out), results), pack_oracle(str(profile))))
        jobs += [(KIND_RETIMED, speeds[(b, r)], [(b, r, n)]) for b, r, n in cells if (b, r) in speeds]
    rows = []
    for kind, factor, group in jobs:
        retimed = kind == KIND_RETIMED
        prof = retimed_pack(profile, factor, work / f"pack-x{factor:.4f}") if retimed else profile
        vcells = [VirtualCell(Workload(dataset=va.dataset, num_prompts=n, request_rate=r, burstiness=b,
                                       seed=va.seed)) for b, r, n in group]
        print(f"llm-emu retime: {kind} x{factor:.3f}: {len(vcells)} cell(s) in virtual time", file=sys.stderr,
              flush=True)
        res = run_virtual_cells(model, str(prof), va.vllm_args, vcells, seed=va.emu_seed,
                                host=scaled_host(host, factor) if retimed else host,
                                out_dir=work / f"{kind}-x{factor:.4f}")
        for (b, r, _), x in zip(group, res, strict=True):
            rows.append({**scalar_part(x), "kind": kind, "burstiness": b, "rate": r, "repeat": 0, "run": 0,
                         "speed": factor})
    return pd.DataFrame(rows)


def tables(out: Path, virtual: pd.DataFrame, wall: bool = True) -> str:
    """Markdown: device speed per cell, then the error tables of wall (``wall``), virtual and retimed emulation."""
    from llm_emu.validate.errors import error_frame
    from llm_emu.validate.tables import GOALS_TEXT, error_table, goal_markdown, markdown_table

    results = pd.read_parquet(out / "results.parquet")
    real = results[results["kind"] == KIND_REAL]
    parts = []
    if KIND_RETIMED in set(virtual.get("kind", [])):
        sp = virtual[virtual["kind"] == KIND_RETIMED].sort_values(CELL, ascending=[False, True])  # as the tables
        from llm_emu.validate.tables import cell_label

        head = "| cell | " + " | ".join(cell_label(b, r) for b, r in sp[CELL].itertuples(index=False)) + " |"
        rows = "| speed | " + " | ".join(f"{x:.3f}" for x in sp["speed"]) + " |\n"
        if "steal_s" in real.columns:
            steal = real.groupby(CELL)["steal_s"].sum()
            rows += "| steal s (real runs) | " + " | ".join(
                f"{steal.get((b, r), float('nan')):.1f}" for b, r in sp[CELL].itertuples(index=False)) + " |\n"
        parts.append("Device speed during each cell (real device time / what the pack expects for the same steps, "
                     "mean of the cell's real runs; steal: CPU time the hypervisor gave to other guests during "
                     "them):\n\n" + head + "\n|---|" + "---:|" * len(sp) + "\n" + rows)
    wall_rows = results[results["kind"] == KIND_EMU]
    emulated = ([(KIND_EMU, "Emulated in wall-clock time (the validation's own emulated runs)", wall_rows)]
                if wall else [])
    for kind, title in ((KIND_VIRTUAL, "Emulated in virtual time, pack as captured"),
                        (KIND_RETIMED, "Emulated in virtual time, pack and host terms at the device's measured "
                                       "speed")):
        if "kind" in virtual.columns:
            emulated.append((kind, title, virtual[virtual["kind"] == kind].assign(kind=KIND_EMU)))
    for kind, title, emu in emulated:
        if emu.empty:
            continue
        frame = error_frame(pd.concat([real, emu], ignore_index=True))
        parts.append(f"{title}, signed % error vs real:\n\n{markdown_table(error_table(frame))}")
        if kind == KIND_RETIMED and frame["floor_pct"].notna().any():
            parts.append(f"The same, against the goals. {GOALS_TEXT}\n{goal_markdown(frame)}")
    return "\n".join(parts)


SECTION = "## Device drift check (--retime)"


def _replay_and_save(out: Path, profile: Path, model: str, host: HostModel) -> pd.DataFrame:
    from llm_emu.fsutil import atomic_write_parquet

    virtual = replay(out, profile, model, host)
    atomic_write_parquet(out / RESULTS, virtual)
    return virtual


def _virtual(out: Path, profile: Path, model: str, host: HostModel, saved: bool) -> pd.DataFrame:
    if not saved:
        return _replay_and_save(out, profile, model, host)
    if not (out / RESULTS).is_file():
        raise EmuError(f"{out / RESULTS} does not exist; drop --saved to replay")
    return pd.read_parquet(out / RESULTS)


def saved_replay(out: Path) -> bool:
    """Whether ``out`` holds a replay newer than its results (a report rebuilt with nothing to run reuses it)."""
    res, rep = out / "results.parquet", out / RESULTS
    return res.is_file() and rep.is_file() and rep.stat().st_mtime >= res.stat().st_mtime


def section(out: Path, profile: Path, model: str, host: HostModel, saved: bool = False) -> str:
    """Replay ``out`` (``replay``), save ``retime.parquet`` and return the report section (markdown);
    ``saved``: no replay, the tables from the ``retime.parquet`` of an earlier one."""
    virtual = _virtual(out, profile, model, host, saved)
    return (f"{SECTION}\n\nThe emulated side replayed in virtual time (host model: {host.source}): with the pack as "
            "captured, and with the pack's step latencies and the host terms multiplied by the device's measured "
            "speed during the cell. Errors that vanish when retimed come from the device running at another "
            "speed than when the pack was captured, not from the emulator (`llm_emu.validate.retime`).\n\n"
            + tables(out, virtual, wall=False))


HOST_FIT = "host-fit.json"
"""The host model fitted on the validation's own emulated runs (``--host trace``)."""


def host_for(out: Path, ref: str | None, saved: bool = False) -> HostModel:
    """The replay's host model: ``trace``/None fits it on ``out``'s emulated runs (saved as host-fit.json; with
    ``saved``, the one an earlier fit saved), anything else goes to ``resolve_host``."""
    from llm_emu.fsutil import atomic_write_text
    from llm_emu.virtual.host import default_host, resolve_host
    from llm_emu.virtual.hostfit import from_validation

    if ref not in (None, "trace"):
        return resolve_host(ref)
    if saved and (out / HOST_FIT).is_file():
        return HostModel.load(out / HOST_FIT)
    model = from_validation(out, default_host())
    atomic_write_text(out / HOST_FIT, model.to_json() + "\n")
    return model


def main(argv: list[str]) -> int:
    from llm_emu.validate.cli import RETIME_HOST_HELP

    parser = argparse.ArgumentParser(prog="python -m llm_emu.validate.retime", description=__doc__.split("\n")[0])
    parser.add_argument("out", help="a validation directory (llm-emu validate --out)")
    parser.add_argument("--profile", default=None, help="the validation's pack (default: from validate.json)")
    parser.add_argument("--model", default=None, help="the validation's model (default: from validate.json)")
    parser.add_argument("--host", default="trace", help="the " + RETIME_HOST_HELP)
    parser.add_argument("--write", action="store_true",
                        help=f"also replace the '{SECTION[3:]}' section of OUT/errors.md with this replay's")
    parser.add_argument("--saved", action="store_true",
                        help=f"no replay: the tables from OUT/{RESULTS} of an earlier one (e.g. after a report change)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    recorded = _validate_args(out)
    profile = args.profile or recorded.profile
    model = args.model or recorded.model
    if not profile:
        raise SystemExit("llm-emu retime: the validation's pack is unknown; pass --profile PACK_DIR")
    try:
        if args.write:
            text = section(out, Path(profile), model, host_for(out, args.host, args.saved), saved=args.saved)
            write_section(out / "errors.md", text)
            print(text)
            return 0
        virtual = _virtual(out, Path(profile), model, host_for(out, args.host, args.saved), args.saved)
    except EmuError as exc:
        raise SystemExit(f"llm-emu retime: {exc}") from None
    print(f"python -m llm_emu.validate.retime {shlex.join(argv)}\n")
    print(tables(out, virtual))
    return 0


def write_section(errors_md: Path, text: str) -> None:
    """``errors_md`` with its drift-check section (everything from the heading on) replaced by ``text``."""
    from llm_emu.fsutil import atomic_write_text

    if not errors_md.is_file():
        raise EmuError(f"{errors_md} does not exist; run `llm-emu validate` (it writes errors.md) first")
    head = errors_md.read_text().split("\n" + SECTION + "\n", 1)[0].rstrip("\n")
    atomic_write_text(errors_md, head + "\n\n" + text.rstrip("\n") + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
