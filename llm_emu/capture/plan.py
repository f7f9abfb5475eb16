"""The capture workload: vLLM benchmark-client runs that cover the batch space of the profiled engine.

Sizes are relative to the engine's resolved limits (max_num_batched_tokens B, max_num_seqs S, max_model_len L)
so the same plan fits a CPU server (2048/128) and an H100 server (8192/1024):

* pure prefill steps from 8 tokens (short chat prompts, the first step of a request at light load) up to B
  tokens (random dataset, one request at a time, few output tokens);
* decode batches from 1 to S requests at short and long contexts (random dataset, max_concurrency levels);
* mixed prefill+decode steps (random dataset at high concurrency, chunked prefill);
* ShareGPT at several Poisson rates (the shape of the validation workload);
* requests that find the device idle (random dataset, a slow Poisson rate): the first steps after an idle period
  take longer on a real device, and the pack's warm-up model (``llm_emu.profile.warmup``) is fitted on them.

``llm-emu profile`` runs a device speed probe (one short request alone, ``llm_emu.capture.speed``) before each
run and after the last, unless ``--no-speed-probes``.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_emu.benchclient import Workload
from llm_emu.capture.speed import PROBE_INPUT, PROBE_OUTPUT, PROBE_SEED

SMALL_PREFILLS = (8, 16, 32)
"""Prompt lengths (tokens) of short pure prefills: ShareGPT has many, and at light load each is alone in its step."""
IDLE_GAP_INPUTS = (64, 384)
"""Prompt lengths (tokens) of the idle-gap runs: a short and a typical chat prompt."""
IDLE_GAP_RATE = 1.0
"""Poisson rate of the idle-gap runs (req/s): each request mostly finds the device idle, after idle times
spread over the warm-up model's bins (50 ms to seconds; 22 % of the gaps are longer than 1.5 s)."""
IDLE_GAP_PROMPTS = 20
"""Requests per idle-gap run."""
PREFILL_FRACTIONS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 3 / 4, 1.0)
"""Pure prefill sizes as fractions of the largest prompt that fits (about max_num_batched_tokens)."""


@dataclass(frozen=True)
class PlanItem:
    """One benchmark run of the capture."""

    label: str
    workload: Workload
    probe: bool = False
    """A device speed probe (``llm_emu.capture.speed``), not part of the covering workload."""


def speed_probe() -> PlanItem:
    """The device speed probe: the same short request alone on the device (``llm_emu.capture.speed``)."""
    wl = Workload(dataset="random", num_prompts=1, request_rate=float("inf"), max_concurrency=1,
                  random_input_len=PROBE_INPUT, random_output_len=PROBE_OUTPUT, seed=PROBE_SEED, ignore_eos=True)
    return PlanItem("speed probe", wl, probe=True)


def with_speed_probes(items: list[PlanItem]) -> list[PlanItem]:
    """``items`` with a speed probe before each and after the last."""
    out: list[PlanItem] = []
    for item in items:
        out += [speed_probe(), item]
    return [*out, speed_probe()] if items else out


def _rnd(inp: int, out: int, conc: int, n: int, seed: int) -> PlanItem:
    wl = Workload(dataset="random", num_prompts=max(1, n), request_rate=float("inf"), max_concurrency=max(1, conc),
                  random_input_len=max(1, inp), random_output_len=max(1, out), seed=seed, ignore_eos=True)
    return PlanItem(f"random in={inp} out={out} conc={conc} n={n}", wl)


def capture_plan(max_num_batched_tokens: int, max_num_seqs: int, max_model_len: int, *,
                 quick: bool = False, sharegpt_prompts: int = 400,
                 sharegpt_rates: tuple[float, ...] = (2.0, 4.0, 8.0, 12.0, float("inf"))) -> list[PlanItem]:
    """The list of benchmark runs for a capture (see module docstring)."""
    B, S, L = max_num_batched_tokens, max_num_seqs, max_model_len
    # Random prompts must leave room for outputs within the context limit.
    big = max(16, min(B, L - 64) - 16)
    items: list[PlanItem] = []
    # Each idle-gap run follows the same prompts back to back (one at a time, the device busy a moment before):
    # the warm reference the warm-up steps are measured against.
    idle: list[PlanItem] = []
    for i, inp in enumerate(IDLE_GAP_INPUTS):
        idle += [_rnd(min(inp, big), 8, 1, 8, 80 + i),
                 PlanItem(f"idle gaps: random in={min(inp, big)} out=8 rate={IDLE_GAP_RATE:g}",
                          Workload(dataset="random", num_prompts=IDLE_GAP_PROMPTS, request_rate=IDLE_GAP_RATE,
                                   random_input_len=min(inp, big), random_output_len=8, seed=90 + i,
                                   ignore_eos=True))]
    if quick:
        items += [
            _rnd(big, 4, 1, 3, 1),
            *(_rnd(n, 2, 1, 4, 5 + i) for i, n in enumerate(SMALL_PREFILLS)),
            _rnd(min(256, big), 32, 16, 32, 2),
            _rnd(64, 64, min(S, 64), min(S, 64), 3),
        ]
        sg = [PlanItem("sharegpt rate=3", Workload(dataset="sharegpt", num_prompts=80, request_rate=3.0, seed=4))]
        return [*items, *sg, *idle]
    seed = 10
    # Pure prefill sweep: one request at a time, short prompts first.
    sizes = sorted({*(n for n in SMALL_PREFILLS if n < big // 32), *(max(8, int(big * f)) for f in PREFILL_FRACTIONS)})
    for inp in sizes:
        items.append(_rnd(inp, 2, 1, 6 if inp <= big // 4 else 4, seed))
        seed += 1
    # Decode batches at short contexts, 1..S.
    conc = 1
    while True:
        items.append(_rnd(64, 192, min(conc, S), max(4, 2 * min(conc, S)), seed))
        seed += 1
        if conc >= S:
            break
        conc *= 4
    # Long contexts.
    long_in = max(64, min(L // 2, L - 512))
    for c in (4, 16, min(64, S)):
        items.append(_rnd(long_in, 256, c, 2 * c, seed))
        seed += 1
    # Mixed prefill + decode steps (chunked prefill when prompts exceed the token budget).
    for inp, out, c in ((512, 128, min(32, S)), (1024, 64, min(64, S)), (min(3 * B // 2, L - 256), 32, 8)):
        items.append(_rnd(max(8, inp), out, c, 3 * c, seed))
        seed += 1
    for rate in sharegpt_rates:
        items.append(PlanItem(f"sharegpt rate={rate:g}",
                              Workload(dataset="sharegpt", num_prompts=sharegpt_prompts, request_rate=rate,
                                       seed=seed)))
        seed += 1
    return [*items, *idle]
