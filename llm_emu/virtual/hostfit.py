"""Fit the host term of virtual time (``HostModel``) from wall-clock runs of the emulator with a step trace.

The emulated worker's step trace (``--trace``: launch/release on CLOCK_MONOTONIC, batch features, the ids of the
requests first scheduled in each step) is joined with vLLM's benchmark client's per-request timings (its
``start_times`` are on the same clock) and the terms are fitted by least squares:

* ``step_*``: EngineCore CPU between the output of step k-2 (async scheduling; k-1 sync) and the launch of
  step k, on (1, scheduled requests, prefill tokens), from steps of a continuously busy engine that admit no
  new request;
* ``request_in_*``: client send -> launch of the request's first step, minus that step's host cost, for
  requests that reached an idle engine (no step on the device in between), on (1, prompt tokens);
* ``output_s``, ``api_output_s``: the request's first chunk at the client minus the release of the step that
  produced it, on (1, requests in that step): the API server takes the step's output batch (``api_step_s``),
  then streams its chunks one at a time, and a new request's is the last of its step;
* ``api_step_s``, ``api_token_s``, ``api_output_s`` from the API server's measured CPU time per run (``ApiCpu``,
  optional): non-negative least squares on (steps, request outputs, chunks sent) over runs where these vary
  independently (``api_costs``: a loaded run merges outputs into fewer chunks, which separates the last two);
  then ``output_s`` is what is left of the delays of first chunks whose step found the API server idle (its
  queue replayed with the fitted terms, ``api_waits``);
* ``api_request_s``: only from a burst (every request sent at once): the span over which it entered the
  scheduler, less the chunks streamed meanwhile, per request.

A term the runs cannot determine (no burst run, fewer than 3 samples) keeps the value of the ``base`` model.
``bench/host_model.py`` runs dedicated runs for the shipped model; ``from_validation`` fits the emulated runs
of an ``llm-emu validate`` directory (``validate --retime`` replays it with that model).
"""

from __future__ import annotations

import bisect
import itertools
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from llm_emu.profile.features import StepFeatures
from llm_emu.virtual.host import NO_HOST, HostModel

REQUEST_ID = re.compile(r"(bench-[0-9a-f]{8}|hostfit-\w+)-(\d+)")
"""(run prefix, index in the run) in an engine request id: vLLM's benchmark client sends ``<prefix><index>``
(default prefix ``bench-<8 hex>-``, one per client run)."""
BUSY_GAP_S = 0.05
"""A gap between steps longer than this is idle time, not host work."""
MIN_SAMPLES = 3


@dataclass(frozen=True)
class TracedRun:
    """One benchmark run against the traced server."""

    prefix: str
    """Its request-id prefix (without the trailing '-')."""
    result: Mapping[str, Any]
    """vLLM's benchmark result with the per-request lists ``start_times``, ``ttfts``, ``input_lens``."""
    burst: bool = False
    """Every request was sent at once (request rate inf)."""


@dataclass(frozen=True)
class ApiCpu:
    """The API server's CPU time during one run (its process's utime + stime, idle share taken out)."""

    cpu_s: float
    requests: int
    chunks: int
    """Chunks the client received (first token + one per inter-chunk gap)."""
    steps: int = 0
    """Engine steps with outputs during the run."""
    tokens: int = 0
    """Request outputs the engine sent (one per request per step: the requests' output tokens)."""


def _separable(x: np.ndarray) -> bool:
    """Whether runs (rows) vary their counts (columns) independently enough to fit one cost per column."""
    if len(x) < x.shape[1] or not (x.max(axis=0) > 0).all():
        return False
    return bool(np.linalg.matrix_rank(x / x.max(axis=0), tol=0.05) == x.shape[1])


def api_costs(runs: Sequence[ApiCpu], per_request_s: float) -> tuple[float, float, float] | None:
    """(api_step_s, api_token_s, api_output_s) from the API server's CPU time of runs with different mixes of
    steps, request outputs and chunks.

    Least squares with non-negative terms on
    ``cpu - per_request_s * requests = step * steps + token * tokens + chunk * chunks``. Where the runs cannot
    tell request outputs from chunks (no run merged outputs into fewer chunks) the two are one cost per chunk;
    where they cannot tell steps from chunks either (one chunks-per-step ratio), everything is per chunk.
    """
    from scipy.optimize import nnls

    use = [r for r in runs if r.chunks > 0]
    if not use:
        return None
    y = np.asarray([r.cpu_s - per_request_s * r.requests for r in use])
    full = np.asarray([[r.steps, r.tokens, r.chunks] for r in use], dtype=float)
    if _separable(full):
        coef, _ = nnls(full, y)
        return float(coef[0]), float(coef[1]), float(coef[2])
    if _separable(full[:, [0, 2]]):
        coef, _ = nnls(full[:, [0, 2]], y)
        return float(coef[0]), 0.0, float(coef[1])
    return 0.0, 0.0, max(0.0, float(y.sum() / full[:, 2].sum()))


def read_trace(path: Path) -> list[dict[str, Any]]:
    """The step trace's records, in step order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def features(step: Mapping[str, Any]) -> StepFeatures:
    """The batch composition of a traced step (the trace records every StepFeatures field)."""
    return StepFeatures(**{f.name: step[f.name] for f in fields(StepFeatures)})


def step_costs(steps: Sequence[Mapping[str, Any]], lag: int) -> tuple[np.ndarray, np.ndarray]:
    """(design rows [1, reqs, tokens], engine CPU seconds) for steps launched while the engine was busy."""
    rows, ys = [], []
    for k in range(lag, len(steps)):
        s, prev = steps[k], steps[k - lag]
        gap = s["launched"] - prev["released"]
        if not 0 < gap < BUSY_GAP_S or s.get("new_req_ids"):  # idle in between, or a new arrival's input work
            continue
        rows.append([1.0, features(s).num_reqs, s["num_prefill_tokens"]])
        ys.append(gap)
    return np.asarray(rows).reshape(-1, 3), np.asarray(ys)


def new_requests(step: Mapping[str, Any]) -> Iterator[tuple[str, int]]:
    """(run prefix, request index) of each request first scheduled in a traced step (ids of other clients are
    skipped)."""
    for rid in step.get("new_req_ids", []):
        m = REQUEST_ID.search(rid)
        if m:
            yield m.group(1), int(m.group(2))


def first_steps(steps: Sequence[Mapping[str, Any]]) -> dict[tuple[str, int], Mapping[str, Any]]:
    """(run prefix, request index) -> the step in which that request was first scheduled."""
    out: dict[tuple[str, int], Mapping[str, Any]] = {}
    for s in steps:
        for key in new_requests(s):
            out.setdefault(key, s)
    return out


def _lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    return np.linalg.lstsq(x, y, rcond=None)[0] if len(y) >= MIN_SAMPLES else None


def _busy_between(steps: Sequence[Mapping[str, Any]]) -> Any:
    """``busy(lo, hi)``: whether a step launched before ``hi`` was still on the device after ``lo``."""
    spans = sorted((s["launched"], s["released"]) for s in steps)
    starts = [a for a, _ in spans]
    reach = np.maximum.accumulate([b for _, b in spans]) if spans else np.zeros(0)

    def busy(lo: float, hi: float) -> bool:
        k = bisect.bisect_left(starts, hi)
        return bool(k and reach[k - 1] > lo)
    return busy


def fit(steps: Sequence[Mapping[str, Any]], runs: Sequence[TracedRun], async_sched: bool,
        base: HostModel = NO_HOST, api_cpu: Sequence[ApiCpu] = ()) -> HostModel:
    """The host model of these traced steps and runs; undetermined terms from ``base``.

    With ``api_cpu`` (the API server's measured CPU per run) ``api_step_s``, ``api_token_s`` and ``api_output_s``
    come from it (``api_costs``) and ``output_s`` is what is left of a first chunk's delay after the API server's
    work; without it, ``output_s`` and the per-request slope (``api_token_s`` + ``api_output_s``, the former
    kept from the base) come from the first chunks' delays, ``api_step_s`` stays the base's.
    """
    model = base
    coef = _lstsq(*step_costs(steps, lag=2 if async_sched else 1))
    if coef is not None:
        model = replace(model, step_base_s=max(0.0, float(coef[0])), step_per_req_s=max(0.0, float(coef[1])),
                        step_per_token_s=max(0.0, float(coef[2])))
    first = first_steps(steps)
    busy = _busy_between(steps)
    ins, lens, outs, out_steps = [], [], [], []
    for run in runs:
        res = run.result
        for i, (start, ttft, plen) in enumerate(zip(res["start_times"], res["ttfts"], res["input_lens"],
                                                    strict=True)):
            s = first.get((run.prefix, i))
            if s is None or not ttft:
                continue
            # the request's first token is the last output of its first step (the engine lists new requests
            # last), so it left the API server behind every other output of that step
            outs.append(start + ttft - s["released"])
            out_steps.append(s)
            if not run.burst and not busy(start, s["launched"]):  # it reached an idle engine
                ins.append(s["launched"] - start - model.step_cost(features(s)))
                lens.append(plen)
    c = _lstsq(np.column_stack([np.ones(len(ins)), lens]), np.asarray(ins))
    if c is not None:
        model = replace(model, request_in_s=max(0.0, float(c[0])), request_in_per_token_s=max(0.0, float(c[1])))
    out_reqs = [features(s).num_reqs for s in out_steps]
    o = _lstsq(np.column_stack([np.ones(len(outs)), out_reqs]), np.asarray(outs))
    if o is not None:  # the intercept holds the step's batch work too (api_step_s, kept from base until split)
        model = replace(model, output_s=max(0.0, float(o[0]) - model.api_step_s),
                        api_output_s=max(0.0, float(o[1]) - model.api_token_s))
    bursts = [r for r in runs if r.burst]
    # the burst's intake is measured net of the API server's step and chunk work, and that work is measured net
    # of the requests' intake: two rounds settle it
    for _ in range(2 if api_cpu else 1):
        if bursts:
            model = replace(model, api_request_s=burst_intake(steps, bursts[0], first, model))
        split = api_costs(api_cpu, model.api_request_s) if api_cpu else None
        if split is not None:
            model = replace(model, api_step_s=split[0], api_token_s=split[1], api_output_s=split[2])
    if api_cpu and outs:  # a new request's first chunk: its step's batch, every chunk of the step, the client
        model = replace(model, output_s=_output_after_api(steps, runs, model, outs, out_steps))
    return model


def api_waits(steps: Sequence[Mapping[str, Any]], runs: Sequence[TracedRun], model: HostModel) -> dict[int, float]:
    """id(step) -> how long the step's output batch waited for the modelled API server (the virtual loop's
    first-come first-served queue: ``api_request_s`` per request the clients sent, ``api_step_work`` for each step
    with outputs; merged chunks are not modelled, so a busy stretch is, if anything, overestimated)."""
    events = [(t, 0, model.api_request_s, 0) for run in runs for t in run.result["start_times"]]
    events += [(s["released"], 1, model.api_step_work(features(s).num_reqs), id(s))
               for s in steps if features(s).num_reqs]
    free, waits = float("-inf"), {}
    for at, kind, busy_s, key in sorted(events, key=lambda e: e[:2]):  # a request sent meanwhile comes first
        start = max(at, free)
        free = start + busy_s
        if kind:
            waits[key] = start - at
    return waits


def _output_after_api(steps: Sequence[Mapping[str, Any]], runs: Sequence[TracedRun], model: HostModel,
                      outs: Sequence[float], out_steps: Sequence[Mapping[str, Any]]) -> float:
    """``output_s``: a first chunk's delay after its step's release, less the API server's work on that step
    (its batch with every request's output, then every chunk of the step: the new request's is last), from the
    first chunks whose step found the modelled API server idle; with fewer than MIN_SAMPLES of those, from all of
    them less the modelled wait.
    Without this, the queueing of loaded runs would be counted as output_s (and charged again by the queue)."""
    waits = api_waits(steps, runs, model)
    wait = np.asarray([waits.get(id(s), 0.0) for s in out_steps])
    rest = np.asarray(outs) - np.asarray([model.api_step_work(features(s).num_reqs) for s in out_steps])
    idle = wait <= 1e-9
    return max(0.0, float(rest[idle].mean() if idle.sum() >= MIN_SAMPLES else (rest - wait).mean()))


def burst_intake(steps: Sequence[Mapping[str, Any]], burst: TracedRun,
                 first: Mapping[tuple[str, int], Mapping[str, Any]], model: HostModel) -> float:
    """API-server time per request, from a burst (every request sent at once): the span over which the burst
    entered the scheduler, less the chunks the API server streamed meanwhile, divided by the requests."""
    n = len(burst.result["ttfts"])
    firsts = sorted(first[(burst.prefix, i)]["launched"] for i in range(n) if (burst.prefix, i) in first)
    if len(firsts) < 10:
        return model.api_request_s
    launched = sorted(s["launched"] for s in steps)
    k = bisect.bisect_left(launched, firsts[-1])
    # the last request entered the scheduler between the launch before its first step and that step's launch
    last_seen = (launched[k - 1] + firsts[-1]) / 2 if k else firsts[-1]
    span = last_seen - firsts[0]
    during = [s for s in steps if firsts[0] <= s["released"] < last_seen]
    busy = sum(model.api_step_work(features(s).num_reqs) for s in during)
    return max(0.0, (span - busy) / (len(firsts) - 1))


def overlapped(steps: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the engine scheduled asynchronously: most busy steps launched before the previous one's release."""
    pairs = [(b["launched"], a["released"]) for a, b in itertools.pairwise(steps)
             if b["launched"] - a["released"] < BUSY_GAP_S]
    return bool(pairs) and sum(lo < prev for lo, prev in pairs) > len(pairs) / 2


def run_prefix(steps: Sequence[Mapping[str, Any]], lo: float, hi: float) -> str | None:
    """The request-id prefix of the run whose (monotonic) window is [lo, hi]: the most common among the requests
    first scheduled in it."""
    seen = Counter(prefix for s in steps if lo <= s["launched"] <= hi for prefix, _ in new_requests(s))
    return seen.most_common(1)[0][0] if seen else None


def validation_runs(out: Path, steps: Sequence[Mapping[str, Any]]) -> list[TracedRun]:
    """The emulated runs of a validation directory, each with its client JSON (matched by its window)."""
    import pandas as pd

    from llm_emu.validate.errors import KIND_EMU

    results = pd.read_parquet(out / "results.parquet")
    emu = results[results["kind"] == KIND_EMU]
    files = []
    for path in sorted((out / "bench" / KIND_EMU).glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if data.get("start_times"):
            files.append(data)
    runs = []
    for row in emu.itertuples():
        lo, hi = float(row.t_mono_start), float(row.t_mono_end)
        match = [d for d in files if lo <= min(d["start_times"]) <= hi]
        prefix = run_prefix(steps, lo, hi)
        if match and prefix:
            runs.append(TracedRun(prefix, match[-1], burst=not np.isfinite(float(row.rate))))
    return runs


def from_validation(out: Path, base: HostModel) -> HostModel:
    """The host model fitted on a validation's own emulated runs (wall clock, this machine, during the
    validation); terms they cannot determine (``api_request_s`` without a burst) from ``base``. Async or sync
    scheduling is read off the trace (``overlapped``)."""
    from llm_emu.errors import EmuError
    from llm_emu.validate.steps import EMU_STEPS

    trace = out / EMU_STEPS
    if not trace.is_file():
        raise EmuError(f"{out} has no {EMU_STEPS}; validate without --no-step-trace, or use the shipped host model "
                       "(validate --retime-host default; python -m llm_emu.validate.retime --host default)")
    steps = read_trace(trace)
    runs = validation_runs(out, steps)
    if not runs:
        raise EmuError(f"{out}: no emulated run could be joined with the step trace; use the shipped host model "
                       "(validate --retime-host default; python -m llm_emu.validate.retime --host default)")
    model = fit(steps, runs, overlapped(steps), base)
    return replace(model, source=f"fitted on the {len(runs)} emulated runs of {out.name} ({len(steps)} steps), "
                                 f"api_request_s from {base.source}")
