"""Calibration terms of the GPU-free oracle and the per-GPU files that ship them (``llm_emu/data/calibration/``).

A calibration file records what was fitted (the terms), on what (rows and sources of ``llm_emu/data/reference``),
how well it does on rows *not* used for fitting (leave-one-source-out), and how it was made (date, command).
Its provenance line, ``estimated, calibrated on N public measurements from K sources``, travels with every
profile built from it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from llm_emu.errors import OracleError
from llm_emu.fsutil import atomic_write_text
from llm_emu.shipped import shipped_path

CALIBRATION_DIR = shipped_path("calibration")
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class CalibrationTerms:
    """What the calibrated oracle adds to aiconfigurator's estimate of one engine step.

    Step time in milliseconds: ``scale * aic_ms + step_ms + prefill_ms_per_ktok * P / 1000
    + decode_ctx_ms_per_ktok * KV / 1000`` for a step with P prefill tokens whose decodes read KV cached tokens;
    0 for a step without tokens. All terms are >= 0 and ``scale`` > 0, so the result keeps the oracle contract
    (non-negative, monotone in the work of the step).
    """

    scale: float = 1.0
    """Multiplies aiconfigurator's estimate (kernel efficiency of the measured stack vs the kernel database)."""
    step_ms: float = 0.0
    """Milliseconds added to every step that runs tokens (launches, synchronisation, sampling, bookkeeping)."""
    prefill_ms_per_ktok: float = 0.0
    """Milliseconds per 1000 prefill tokens in the step (prefill and mixed prefill+decode steps)."""
    decode_ctx_ms_per_ktok: float = 0.0
    """Milliseconds per 1000 KV tokens read by the step's decodes (attention cost growing with context)."""

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise OracleError(f"calibration term scale must be > 0, got {self.scale}")
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or value != value or value < 0:
                raise OracleError(f"calibration term {f.name} must be a number >= 0, got {value!r}")

    def step_ms_from(self, aic_ms: float, prefill_tokens: int, decode_context_tokens: int) -> float:
        """The calibrated step time in ms, given aiconfigurator's estimate ``aic_ms`` of the same step."""
        return (self.scale * aic_ms + self.step_ms + self.prefill_ms_per_ktok * prefill_tokens / 1000.0
                + self.decode_ctx_ms_per_ktok * decode_context_tokens / 1000.0)

    @classmethod
    def from_dict(cls, data: Any, where: str = "calibration terms") -> CalibrationTerms:
        """Parse ``{"scale": ..., "step_ms": ...}``; unknown names are an error that lists the valid ones."""
        if not isinstance(data, dict):
            raise OracleError(f"{where}: expected an object of terms, got {type(data).__name__}")
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise OracleError(f"{where}: unknown term(s) {unknown}; valid terms are {valid}")
        return cls(**{k: float(v) for k, v in data.items()})


@dataclass(frozen=True)
class Calibration:
    """One GPU's calibration file."""

    gpu: str
    """aiconfigurator system name, e.g. "h100_sxm"."""
    terms: CalibrationTerms
    """The fitted terms."""
    rows: list[str]
    """Reference rows the terms were fitted on (``llm_emu/data/reference/runs.csv`` row_id)."""
    sources: list[str]
    """Their distinct source_id values."""
    gpus: list[str] = field(default_factory=list)
    """GPUs of those rows when the terms were fitted jointly on several (empty: this GPU's rows only)."""
    host_request_ms: float = 0.0
    """Host time of the real server from a request's arrival to its scheduling (HTTP, tokenisation), fitted with
    the terms; not part of the oracle: the virtual clock charges it per request in replays of this GPU."""
    host_step_ms: float = 0.0
    """Host (EngineCore CPU) time per engine step of the real server; hidden by async scheduling, added to every
    step by sync scheduling. Not part of the oracle: the virtual clock charges it in replays of this GPU."""
    host_step_per_req_ms: float = 0.0
    """Host time per request scheduled in a step of the real server, on top of ``host_step_ms`` (sync scheduling
    only, like it)."""
    held_out: dict[str, Any] = field(default_factory=dict)
    """Leave-one-source-out scores: metric -> mean |error| % on rows of a source the fit did not see, etc."""
    transferred_from: str | None = None
    """GPU whose terms were reused (no fit on this GPU's own rows), or None."""
    fitted_at: str = ""
    """ISO date of the fit."""
    command: str = ""
    """Command that produced the file."""
    notes: str = ""
    """Anything else a reader needs (clock, versions, caveats)."""
    schema_version: int = SCHEMA_VERSION
    """File format version."""

    @property
    def provenance(self) -> str:
        """The line shown wherever numbers from this calibration appear."""
        text = f"estimated, calibrated on {len(self.rows)} public measurements from {len(self.sources)} sources"
        if len(self.gpus) > 1:
            text += f" ({' + '.join(self.gpus)})"
        return text + (f" on {self.transferred_from}" if self.transferred_from else "")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"


def calibration_path(gpu: str) -> Path:
    return CALIBRATION_DIR / f"{gpu}.json"


def available_calibrations() -> list[str]:
    """GPUs with a shipped calibration file."""
    return sorted(p.stem for p in CALIBRATION_DIR.glob("*.json")) if CALIBRATION_DIR.is_dir() else []


def parse_calibration(data: Any, where: str) -> Calibration:
    """Validate a calibration file's contents."""
    if not isinstance(data, dict):
        raise OracleError(f"{where}: expected a JSON object")
    if data.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise OracleError(f"{where}: schema_version {data.get('schema_version')!r} is not {SCHEMA_VERSION}; "
                          "re-run `llm-emu reference --fit`")
    valid = {f.name for f in fields(Calibration)}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise OracleError(f"{where}: unknown field(s) {unknown}; valid fields are {sorted(valid)}")
    body = dict(data)
    body["terms"] = CalibrationTerms.from_dict(body.get("terms", {}), f"{where}: terms")
    try:
        return Calibration(**body)
    except TypeError as exc:
        raise OracleError(f"{where}: {exc}") from None


def load_calibration(gpu: str) -> Calibration:
    """The shipped calibration of ``gpu``.

    Raises:
        OracleError: no file for this GPU (the message lists the calibrated GPUs) or a malformed file.
    """
    path = calibration_path(gpu)
    if not path.is_file():
        raise OracleError(f"no calibration for {gpu!r}; calibrated GPUs are {available_calibrations()} "
                          f"(use aic:{gpu} for the uncalibrated estimate)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise OracleError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    return parse_calibration(data, str(path))


def save_calibration(cal: Calibration, path: Path | None = None) -> Path:
    """Write a calibration file atomically (temp file + fsync + rename)."""
    dest = path or calibration_path(cal.gpu)
    atomic_write_text(dest, cal.to_json())
    return dest
