"""How a reference row is replayed: model, profile, `vllm serve` flags, vLLM-client workload, and what differs.

Every difference between the published run and its replay that the offline machine cannot avoid is listed in
``ReplayPlan.deviations``, one short phrase each, and printed with the error table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from llm_emu.benchclient import Workload
from llm_emu.errors import EmuError
from llm_emu.models import MODELS_DIR
from llm_emu.reference.rows import ReferenceRow

#: Prompts of a closed-loop run whose source does not say how many: this many per concurrent request.
PROMPTS_PER_SLOT = 4
#: A shortened open-loop run keeps at least this many published mean E2E latencies of arrivals, so that the
#: ramp-up and drain (about one E2E latency each) stay a small part of it.
MIN_E2E_SPANS = 4


DEFAULT_PROFILE = "aic-cal:{gpu}"
"""The replay's default profile template: the calibrated estimate where the GPU has a calibration."""

@dataclass(frozen=True)
class ReplayOptions:
    """Choices of one replay run that are not part of the reference rows."""

    profile: str = DEFAULT_PROFILE
    """Profile template; ``{gpu}`` becomes the row's GPU (e.g. "aic:{gpu}" for the uncalibrated estimate)."""
    max_prompts: int | None = None
    """Cap on requests of open-loop rows (None: as published), raised to MIN_E2E_SPANS published E2E latencies of
    arrivals. Shortens long constant-rate stages; all-at-once rows are never shortened (their size is the load)."""
    prompts_per_slot: int | None = None
    """Closed-loop rows with fixed output lengths: at most this many requests per concurrent slot (None: no cap).
    A closed loop is in steady state from the start, so a shorter run measures the same means."""
    seed: int = 0
    """Seed of the client's sampling and of the emulator."""
    host_ms: tuple[float, float, float] | None = None
    """Virtual clock: host ms (per request, per step, per request in a step) (None: the GPU's calibration for
    aic-cal profiles, else 0).
    The per-step parts are charged only to rows whose server scheduled synchronously
    (``ReferenceRow.async_scheduling``)."""


@dataclass(frozen=True)
class ReplayPlan:
    """Everything needed to replay one row."""

    row: ReferenceRow
    """The row replayed."""
    model: str
    """Shipped model config served."""
    profile: str
    """Profile string (e.g. "aic-cal:h200_sxm,quant=fp8")."""
    vllm_args: tuple[str, ...]
    """`vllm serve` flags."""
    workload: Workload
    """vLLM benchmark-client workload (client_args included)."""
    deviations: tuple[str, ...]
    """What differs from the published run."""
    warmup: Workload | None = None
    """Requests the client sends first (same prompt pool, same concurrency), results dropped and the prefix cache
    kept for the measured run; None: none."""
    host_ms: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Virtual clock only: host ms per request (arrival to scheduling), per engine step and per request in a step
    (the step parts 0 where the row's server scheduled asynchronously: its per-step CPU work overlaps the GPU)."""

    @property
    def server_key(self) -> tuple[str, str, tuple[str, ...], tuple[float, float, float]]:
        """Rows with the same key can share one server."""
        return self.model, self.profile, self.vllm_args, self.host_ms


def profile_for(row: ReferenceRow, template: str) -> str:
    """The profile string of ``row`` under ``template`` (adds quant=fp8 for FP8-weight rows).

    The default template, ``aic-cal:{gpu}``, falls back to the uncalibrated ``aic:{gpu}`` for a GPU that has no
    calibration file (the report names the profile of every row)."""
    if template == DEFAULT_PROFILE:
        from llm_emu.oracle.calibration import available_calibrations

        if row.gpu not in available_calibrations():
            template = "aic:{gpu}"
    ref = template.format(gpu=row.gpu)
    if row.weight_quant and ref.startswith(("aic:", "aic-cal:")):
        ref += f",quant={row.weight_quant}"
    return ref


def _num_prompts(row: ReferenceRow, opts: ReplayOptions, dev: list[str]) -> int:
    n = row.num_prompts
    if n is None:
        n = PROMPTS_PER_SLOT * (row.max_concurrency or 8)
        dev.append(f"number of prompts unstated: {n} used")
    cap = None
    if opts.max_prompts is not None and row.arrival in ("constant", "poisson"):
        e2e_s = row.published.get("mean_e2el_ms", 0.0) / 1000.0
        cap = max(opts.max_prompts, math.ceil(MIN_E2E_SPANS * row.request_rate * e2e_s))
    if opts.prompts_per_slot and row.arrival in ("closed-loop", "concurrency") and row.output_len \
            and row.max_concurrency:
        cap = min(cap or n, opts.prompts_per_slot * row.max_concurrency)
    if cap is not None and n > cap:
        dev.append(f"{cap} of {n} prompts (shortened run)")
        n = cap
    return n


def _dataset(row: ReferenceRow, n: int, opts: ReplayOptions, dev: list[str]) -> dict[str, object]:
    if row.dataset == "sharegpt":
        return {"dataset": "sharegpt"}
    if row.output_len is None or row.input_len is None:
        raise EmuError(f"reference row {row.row_id}: dataset {row.dataset} needs input_len and output_len")
    if row.dataset == "random" and row.prompt_pool:
        return _pool_dataset(row, n, (row.warmup_requests or 0, (row.warmup_requests or 0) + n), opts, dev)
    if row.dataset == "random":
        ratio = row.range_ratio or 0.0
        return {"dataset": "random", "random_input_len": row.input_len, "random_output_len": row.output_len,
                "client_args": ("--random-range-ratio", f"{ratio:g}")}
    from llm_emu.reference.prompts import shared_prefix_file

    path = shared_prefix_file(row.emu_model, row.num_groups or 10, row.prefix_len or 0, row.input_len, n,
                              seed=opts.seed)
    dev.append("random-token prompts regenerated with the stand-in tokenizer (same recipe, other tokens)")
    dev.append("single-turn: a new question per request after its group's system prompt (harness version unstated)")
    return {"dataset": "custom", "dataset_path": str(path),
            "client_args": ("--custom-output-len", str(row.output_len), "--disable-shuffle", "--skip-chat-template")}


def _pool_dataset(row: ReferenceRow, n: int, part: tuple[int, int], opts: ReplayOptions,
                  dev: list[str] | None) -> dict[str, object]:
    """Requests ``part`` of the warm-up + measured draw from the row's prompt pool, as a CustomDataset file."""
    from llm_emu.reference.prompts import pool_file

    assert row.prompt_pool and row.input_len and row.output_len
    total = (row.warmup_requests or 0) + n
    path = pool_file(row.emu_model, row.prompt_pool, row.input_len, total, part, seed=opts.seed)
    if dev is not None:
        dev.append(f"{row.prompt_pool} random-token prompts regenerated with the stand-in tokenizer, drawn with "
                   "repeats (repeats hit the prefix cache)")
    return {"dataset": "custom", "dataset_path": str(path),
            "client_args": ("--custom-output-len", str(row.output_len), "--disable-shuffle", "--skip-chat-template")}


def _steady_rate(row: ReferenceRow) -> float:
    """Arrivals per second that keep ``max_concurrency`` requests in flight at the published latencies."""
    pub = row.published
    e2e_ms = pub.get("mean_e2el_ms") or pub["mean_ttft_ms"] + ((row.output_len or 1) - 1) * pub["mean_tpot_ms"]
    return (row.max_concurrency or 1) / (e2e_ms / 1000.0)


def _arrival(row: ReferenceRow, dev: list[str]) -> dict[str, object]:
    if row.arrival == "concurrency" and row.warmup_requests:
        dev.append(f"concurrency {row.max_concurrency} held by a closed loop after a warm-up of "
                   f"{row.warmup_requests} requests (the source's client is unstated)")
        return {"request_rate": math.inf, "max_concurrency": row.max_concurrency}
    if row.arrival == "concurrency":
        rate = _steady_rate(row)
        dev.append(f"concurrency {row.max_concurrency} held by arrivals every {1000 / rate:.1f} ms (the published "
                   "E2E over the concurrency), so requests do not start in lockstep (the source's client is unstated)")
        return {"request_rate": rate, "burstiness": math.inf, "max_concurrency": row.max_concurrency}
    if row.arrival == "constant":
        return {"request_rate": row.request_rate, "burstiness": math.inf}  # vLLM: fixed gaps of 1/rate
    if row.arrival == "poisson":
        return {"request_rate": row.request_rate, "burstiness": 1.0}
    if row.arrival == "closed-loop" and row.max_concurrency is None:
        raise EmuError(f"reference row {row.row_id}: closed-loop arrival needs max_concurrency")
    return {"request_rate": math.inf, "max_concurrency": row.max_concurrency}


def _row_deviations(row: ReferenceRow) -> list[str]:
    dev = []
    hf_name = (MODELS_DIR / row.emu_model / "llm_emu.json")
    if hf_name.is_file():
        dev.append(f"Mistral-v3 tokenizer stands in for {row.model}'s (token counts differ)")
    if "offload" in row.serve_flags_published.lower():
        dev.append("KV-cache CPU offloading not emulated")
    if row.weight_quant:
        dev.append(f"{row.weight_quant} weights only in the latency estimate (vLLM serves BF16 shapes)")
    if row.api == "unstated":
        dev.append("API unstated: completions used")
    if row.ignore_eos == "unstated":
        dev.append("ignore_eos unstated: on (fixed output lengths)")
    return dev


def host_ms_for(profile: str, gpu: str,
                override: tuple[float, float, float] | None) -> tuple[float, float, float]:
    """Host ms (per request, per step, per request in a step): the override, else the GPU's calibration for
    aic-cal profiles, else 0."""
    if override is not None:
        return override
    from llm_emu.oracle.calibration import available_calibrations, load_calibration

    if not profile.startswith("aic-cal:") or gpu not in available_calibrations():
        return 0.0, 0.0, 0.0
    cal = load_calibration(gpu)
    return cal.host_request_ms, cal.host_step_ms, cal.host_step_per_req_ms


def plan_row(row: ReferenceRow, opts: ReplayOptions | None = None) -> ReplayPlan:
    """The replay of ``row``."""
    opts = opts or ReplayOptions()
    dev = _row_deviations(row)
    n = _num_prompts(row, opts, dev)
    data = _dataset(row, n, opts, dev)
    client_args: tuple[str, ...] = tuple(data.pop("client_args", ()))  # type: ignore[arg-type]
    if row.api == "chat":
        client_args += ("--backend", "openai-chat", "--endpoint", "/v1/chat/completions")
    arrival = _arrival(row, dev)
    workload = Workload(num_prompts=n, seed=opts.seed, ignore_eos=row.ignore_eos != "false",
                        client_args=client_args, **data, **arrival)  # type: ignore[arg-type]
    warmup = None
    if row.warmup_requests:
        if not row.prompt_pool:
            raise EmuError(f"reference row {row.row_id}: warmup_requests needs a prompt_pool (what the warm-up "
                           "leaves in the prefix cache is the point of it)")
        first = _pool_dataset(row, n, (0, row.warmup_requests), opts, None)
        warmup = replace(workload, num_prompts=row.warmup_requests, dataset_path=str(first["dataset_path"]))
    profile = profile_for(row, opts.profile)
    request_ms, step_ms, step_req_ms = host_ms_for(profile, row.gpu, opts.host_ms)
    if row.async_scheduling:
        step_ms = step_req_ms = 0.0
    return ReplayPlan(row=row, model=row.emu_model, profile=profile, vllm_args=row.serve_flags, workload=workload,
                      deviations=tuple(dev), host_ms=(request_ms, step_ms, step_req_ms), warmup=warmup)
