"""Full fidelity run on the CPU hardware loop: capture, validate with A/A, write the docs table.

    .venv/bin/python bench/fidelity.py --out runs/fidelity --docs docs/FIDELITY.md

Run it on an otherwise idle machine (the load averages before and after are recorded with the table). Steps,
each skipped when its output exists (an interrupted run resumes with the same command):

1. `llm-emu profile --model tiny-llama --out OUT/pack` (full capture plan; ``--profile`` reuses a pack);
   when the capture's device speed probes found the device unsteady (its speed moved by more than 10 % within
   minutes, ``llm_emu.capture.speed``), it stops here with the capture's warning unless ``--force``: such a
   machine cannot resolve the 2 % goals, and the validation takes hours;
2. the real server's capacity: the saturated request throughput of the capture's ShareGPT rate=inf run; the
   rates are ``--load-fractions`` of it (light load well below capacity up to past saturation) unless
   ``--rates`` is given;
3. `llm-emu validate --profile OUT/pack --rates ... --burstiness 1,0.25 --num-prompts 500 --repeats K
   --out OUT/validate` (both servers up, per cell real / emulated / real: the A/A noise floor; the
   estimated duration is printed before it starts; ``--retime``: the device drift check, unless
   ``--no-retime``); run again with every run done, it rebuilds the report from the saved results;
4. OUT/fidelity.md: the dated section for docs/FIDELITY.md (command, machine, load averages, capacity, error
   table, noise floor with verdicts, step-level accuracy); ``--docs FILE`` also replaces the section between
   the ``<!-- fidelity-run -->`` markers in FILE.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- fidelity-run:begin -->", "<!-- fidelity-run:end -->"
CAPACITY_RUN = "sharegpt rate=inf"


def _run(cmd: list[str]) -> float:
    print("$ " + shlex.join(cmd), flush=True)
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, cwd=ROOT)
    return time.monotonic() - t0


def capacity(pack: Path) -> float | None:
    """Saturated request throughput (req/s) of the capture's all-at-once ShareGPT run, if it has one."""
    path = pack / "capture.json"
    if not path.is_file():
        return None
    runs = json.loads(path.read_text()).get("runs", [])
    found = [r.get("request_throughput") for r in runs if r.get("label") == CAPACITY_RUN]
    return float(found[0]) if found and found[0] else None


def rates_from(cap: float, fractions: str) -> str:
    """Rates (2 significant digits) at the given fractions of the capacity."""
    return ",".join(f"{float(f'{cap * float(f):.2g}'):g}" for f in fractions.split(",") if f.strip())


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{os.cpu_count()} cores"


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def _section(text: str, name: str) -> str:
    """The markdown of one '## name' section of errors.md (without its heading)."""
    part = text.split(f"\n## {name}\n", 1)
    return part[1].split("\n## ", 1)[0].strip() + "\n" if len(part) == 2 else ""


def docs_section(errors_md: str, command: str, meta: dict[str, str]) -> str:
    """The dated section for docs/FIDELITY.md from a validation's errors.md."""
    table = errors_md.split("```\n", 2)[-1].split("\n## ", 1)[0].strip()
    return "\n".join([
        BEGIN, f"### Run {meta['date']}: {meta['what']}", "",
        f"Machine: {meta['cpu']}; load average (1/5/15 min) before {meta['load_before']}, after "
        f"{meta['load_after']}. Capacity of the real server (saturated ShareGPT request throughput in the "
        f"capture): {meta['capacity']} req/s. Wall time: {meta['wall']}.", "",
        "```", command, "```", "", table, "",
        "Noise floor (real vs real, see \"Validation\" above). " + _section(errors_md, "Noise floor (real vs real)"),
        *(["Against the goals. " + goals] if (goals := _section(errors_md, "Against the goals")) else []),
        "Step latency per batch shape (all cells):", "",
        _section(errors_md, "Step latency per batch shape (all cells)"),
        *(["Device drift check (`llm-emu validate --retime`): " + drift] if (drift := _section(
            errors_md, "Device drift check (--retime)")) else []), END, ""])


def replace_section(path: Path, section: str) -> None:
    """Replace the marked section of ``path`` (or append it when there are no markers)."""
    text = path.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section.rstrip("\n") + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def unsteady_device(pack: Path) -> str | None:
    """The capture's warning when its speed probes found the device unsteady (``llm_emu.capture.speed``)."""
    path = pack / "capture.json"
    if not path.is_file():
        return None
    warning = (json.loads(path.read_text()).get("speed_probes") or {}).get("warning")
    return str(warning) if warning else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/fidelity")
    p.add_argument("--model", default="tiny-llama")
    p.add_argument("--rates", default=None, help="request rates (default: --load-fractions of the capacity)")
    p.add_argument("--load-fractions", default="0.25,0.5,0.75,1,1.25,1.5",
                   help="rates as fractions of the measured capacity (default %(default)s)")
    p.add_argument("--burstiness", default="1,0.25")
    p.add_argument("--num-prompts", type=int, default=500)
    p.add_argument("--repeats", type=int, default=1, help="real/emulated/real repeats per cell")
    p.add_argument("--sharegpt-rates", default="2,4,6,8,10,12,inf", help="ShareGPT rates of the capture")
    p.add_argument("--sharegpt-prompts", type=int, default=300, help="ShareGPT prompts per capture rate")
    p.add_argument("--profile", default=None, help="use this pack instead of capturing one")
    p.add_argument("--quick-capture", action="store_true", help="capture with --quick (reduced run)")
    p.add_argument("--no-retime", action="store_true", help="no device drift check (llm-emu validate --retime)")
    p.add_argument("--docs", default=None, help="also replace the marked section of this file (docs/FIDELITY.md)")
    p.add_argument("--force", action="store_true",
                   help="validate even when the capture's speed probes found the device unsteady")
    args, vllm_args = p.parse_known_args(argv)
    out = (ROOT / args.out).resolve() if not Path(args.out).is_absolute() else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"date": dt.date.today().isoformat(), "cpu": _cpu(), "load_before": _load()}
    t0 = time.monotonic()
    cli = [sys.executable, "-m", "llm_emu.cli"]
    pack = Path(args.profile) if args.profile else out / "pack"
    if not (pack / "steps.parquet").is_file():
        cmd = [*cli, "profile", "--model", args.model, "--out", str(pack), "--sharegpt-rates", args.sharegpt_rates,
               "--sharegpt-prompts", str(args.sharegpt_prompts), "--keep-raw", *vllm_args]
        _run([*cmd, "--quick"] if args.quick_capture else cmd)
    unsteady = unsteady_device(pack)
    if unsteady and not args.force:
        print(f"fidelity: stopped before the validation: {unsteady}; pass --force to validate anyway",
              file=sys.stderr)
        return 2
    cap = capacity(pack)
    rates = args.rates or (rates_from(cap, args.load_fractions) if cap else "0.25,0.5,1,1.5,2,3")
    meta["capacity"] = f"{cap:.2f}" if cap else "unknown"
    val = out / "validate"
    validate = [*cli, "validate", "--profile", str(pack), "--model", args.model, "--rates", rates,
                "--burstiness", args.burstiness, "--num-prompts", str(args.num_prompts), "--repeats",
                str(args.repeats), "--out", str(val), *(["--capacity", str(cap)] if cap else []),
                *([] if args.no_retime else ["--retime"]), *vllm_args]
    fresh = not (val / "errors.md").is_file()
    _run(validate)  # resumes; with every run done it rebuilds the report (and reuses the saved drift replay)
    if fresh:
        meta["load_after"] = _load()
        meta["wall"] = f"{(time.monotonic() - t0) / 60:.0f} min"
    else:  # an earlier call ran it: its own record (of its last, possibly resumed, call)
        rec = json.loads((val / "validate.json").read_text()) if (val / "validate.json").is_file() else {}
        meta["load_before"], meta["load_after"] = ("/".join(f"{x:.2f}" for x in rec.get(k, []) or []) or "?"
                                                   for k in ("load_before", "load_after"))
        meta["wall"] = f"{rec.get('seconds', float('nan')) / 60:.0f} min of validation (capture not included)"
    patterns = " and ".join("Poisson" if float(b) == 1 else f"bursty (gamma {b})" for b in args.burstiness.split(","))
    meta["what"] = (f"{len(rates.split(','))} rates, {patterns}, {args.num_prompts} prompts per run"
                    + (f", vLLM flags `{shlex.join(vllm_args)}`" if vllm_args else "")
                    + (", quick capture" if args.quick_capture else ""))
    command = "python bench/fidelity.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    section = docs_section((val / "errors.md").read_text(), command + "\n# = llm-emu " + shlex.join(validate[3:]), meta)
    (out / "fidelity.md").write_text(section)
    if args.docs:
        replace_section(Path(args.docs), section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
