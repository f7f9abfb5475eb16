"""The reference set: published real-GPU vLLM runs (``llm_emu/data/reference/runs.csv``), one typed row per run."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llm_emu.errors import EmuError
from llm_emu.shipped import shipped_path

REFERENCE_CSV = shipped_path("reference", "runs.csv")

#: Published metric columns, vLLM's benchmark-client names (ms unless named otherwise).
METRICS: tuple[str, ...] = (
    "mean_ttft_ms", "median_ttft_ms", "p90_ttft_ms", "p99_ttft_ms",
    "mean_tpot_ms", "median_tpot_ms", "p99_tpot_ms",
    "mean_itl_ms", "median_itl_ms", "p99_itl_ms", "decode_ms_per_token",
    "mean_e2el_ms", "p90_e2el_ms", "p99_e2el_ms",
    "output_throughput", "total_token_throughput", "request_throughput", "benchmark_duration_s",
    "total_input_tokens", "total_output_tokens",
)
DATASETS = ("sharegpt", "random", "shared_prefix")
ARRIVALS = ("constant", "poisson", "closed-loop", "all-at-once", "concurrency")


class ReferenceError(EmuError):
    """A malformed reference CSV or an unknown row id."""


@dataclass(frozen=True)
class ReferenceRow:
    """One published serving run (see llm_emu/data/reference/README.md for every column)."""

    row_id: str
    """Unique id, e.g. "s2r-16-0"."""
    source_id: str
    """The source it comes from (unit of leave-one-source-out scoring)."""
    source: str
    """Repository@commit:path or URL."""
    gpu: str
    """aiconfigurator system the replay emulates, e.g. "h100_sxm"."""
    model: str
    """Model as published."""
    emu_model: str
    """Shipped model config the replay serves."""
    dtype: str
    """As published."""
    vllm_version: str
    """vLLM version of the real run."""
    api: str
    """"completions", "chat" or "unstated"."""
    dataset: str
    """One of DATASETS."""
    arrival: str
    """One of ARRIVALS."""
    serve_flags: tuple[str, ...]
    """`vllm serve` flags of the replay (replay_serve_flags)."""
    published: dict[str, float]
    """Metric name -> published value (only the metrics the source gives)."""
    prefix_len: int | None = None
    """shared_prefix: tokens of each group's system prompt."""
    input_len: int | None = None
    """random: input tokens; shared_prefix: question tokens."""
    output_len: int | None = None
    """Output tokens (random, shared_prefix)."""
    range_ratio: float | None = None
    """random: vLLM's --random-range-ratio."""
    num_groups: int | None = None
    """shared_prefix: system prompts (inference-perf's num_unique_system_prompts)."""
    prompts_per_group: int | None = None
    """shared_prefix: users per system prompt (num_users_per_system_prompt), as published."""
    num_prompts: int | None = None
    """Requests of the run (None: unstated)."""
    request_rate: float = math.inf
    """Requests per second (inf: no pacing)."""
    max_concurrency: int | None = None
    """Requests in flight at most (closed loop)."""
    prompt_pool: int | None = None
    """random: the client draws every request's prompt from this many distinct prompts (aiperf's
    --num-dataset-entries), so repeated prompts hit the prefix cache; None: a new prompt per request."""
    warmup_requests: int | None = None
    """Requests sent (at the row's concurrency, same prompt pool) before the measured run; the prefix cache
    keeps what they left. None: none."""
    ignore_eos: str = "unstated"
    """"true", "false" or "unstated"."""
    serve_flags_published: str = ""
    """What the source states about its server."""
    unstated: str = ""
    """What the source leaves unstated."""
    notes: str = ""
    """Anything else needed to read the row."""
    extra: dict[str, str] = field(default_factory=dict)
    """The remaining columns, verbatim."""

    @property
    def weight_quant(self) -> str | None:
        """"fp8" for FP8-weight runs (estimated with FP8 GEMMs), else None."""
        return "fp8" if self.dtype.lower().startswith("fp8") else None

    @property
    def async_scheduling(self) -> bool:
        """Whether the real server scheduled asynchronously (step N+1 prepared while step N runs on the GPU).

        ``--async-scheduling`` / ``--no-async-scheduling`` in the replay's or the published flags decide; otherwise the
        version's
        default: on from vLLM 0.14 (vllm-project/vllm#27614), off before. With it off, the engine's CPU work per
        step (schedule, prepare inputs, sample, update) runs between GPU steps and adds to every step."""
        for flags in (self.serve_flags, self.serve_flags_published.split()):
            if "--no-async-scheduling" in flags:
                return False
            if "--async-scheduling" in flags:
                return True
        return version_tuple(self.vllm_version) >= ASYNC_SCHEDULING_DEFAULT_FROM


#: First vLLM release whose server schedules asynchronously by default.
ASYNC_SCHEDULING_DEFAULT_FROM = (0, 14)


def version_tuple(version: str) -> tuple[int, ...]:
    """(major, minor, ...) of a version string such as "0.11.0" or "v0.15.1rc2" (digits of each part)."""
    parts = []
    for part in version.strip().lstrip("v").split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        parts.append(int(digits.group()))
    if not parts:
        raise ReferenceError(f"vllm_version {version!r} is not a version number like 0.11.0")
    return tuple(parts)


def _num(text: str, where: str, kind: type = float) -> float | int | None:
    if text.strip() == "":
        return None
    try:
        return kind(float(text)) if kind is int else float(text)
    except ValueError:
        raise ReferenceError(f"{where}: {text!r} is not a number") from None


def _row(raw: dict[str, str], where: str) -> ReferenceRow:
    if raw["dataset"] not in DATASETS:
        raise ReferenceError(f"{where}: dataset {raw['dataset']!r} is not one of {list(DATASETS)}")
    if raw["arrival"] not in ARRIVALS:
        raise ReferenceError(f"{where}: arrival {raw['arrival']!r} is not one of {list(ARRIVALS)}")
    try:
        version_tuple(raw["vllm_version"])
    except ReferenceError as exc:
        raise ReferenceError(f"{where}: {exc}") from None
    published = {m: float(v) for m in METRICS if (v := _num(raw.get(m, ""), f"{where} {m}")) is not None}
    if not published:
        raise ReferenceError(f"{where}: no published metric; fill at least one of {list(METRICS)}")
    ints = {k: _num(raw[k], f"{where} {k}", int) for k in
            ("prefix_len", "input_len", "output_len", "num_groups", "prompts_per_group", "num_prompts",
             "max_concurrency", *(k for k in ("prompt_pool", "warmup_requests") if k in raw))}
    rate = _num(raw["request_rate"], f"{where} request_rate")
    used = {"row_id", "source_id", "source", "gpu", "model", "emu_model", "dtype", "vllm_version", "api", "dataset",
            "arrival", "replay_serve_flags", "range_ratio", "request_rate", "ignore_eos", "serve_flags_published",
            "unstated", "notes", *ints, *METRICS}
    return ReferenceRow(
        row_id=raw["row_id"], source_id=raw["source_id"], source=raw["source"], gpu=raw["gpu"], model=raw["model"],
        emu_model=raw["emu_model"], dtype=raw["dtype"], vllm_version=raw["vllm_version"], api=raw["api"],
        dataset=raw["dataset"], arrival=raw["arrival"], serve_flags=tuple(raw["replay_serve_flags"].split()),
        published=published, range_ratio=_num(raw["range_ratio"], f"{where} range_ratio"),  # type: ignore[arg-type]
        request_rate=math.inf if rate is None else float(rate), ignore_eos=raw["ignore_eos"] or "unstated",
        serve_flags_published=raw["serve_flags_published"], unstated=raw["unstated"], notes=raw["notes"],
        extra={k: v for k, v in raw.items() if k not in used},
        **ints,  # type: ignore[arg-type]
    )


def load_reference(path: str | Path | None = None, ids: Sequence[str] | None = None) -> list[ReferenceRow]:
    """Rows of the reference CSV, in file order; ``ids`` selects rows by row_id or source_id (in that order).

    Raises:
        ReferenceError: a malformed row, a duplicate row_id, or an id that names no row (the message lists them).
    """
    path = Path(path) if path is not None else REFERENCE_CSV
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [_row(raw, f"{path}:{i + 2} ({raw.get('row_id', '?')})") for i, raw in enumerate(csv.DictReader(fh))]
    seen: set[str] = set()
    for r in rows:
        if r.row_id in seen:
            raise ReferenceError(f"{path}: row_id {r.row_id!r} appears twice")
        seen.add(r.row_id)
    if not ids:
        return rows
    picked: list[ReferenceRow] = []
    for ident in ids:
        match = [r for r in rows if ident in (r.row_id, r.source_id, r.gpu)]
        if not match:
            raise ReferenceError(f"no reference row, source or gpu named {ident!r}; row ids are "
                                 f"{[r.row_id for r in rows]}")
        picked += [r for r in match if r not in picked]
    return picked
