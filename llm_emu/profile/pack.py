"""Profile pack on disk: ``profile.json`` (metadata) + ``steps.parquet`` (+ optional ``requests.parquet``).

Layout of a pack directory::

    PACK/profile.json       ProfileMeta as JSON (schema_version, device, vllm_version, model, engine, provenance)
    PACK/steps.parquet      one row per engine step: StepFeatures columns + latency_us (device time)
    PACK/requests.parquet   optional: prompt_len, output_len, finish_reason per request (output-length model)

Every problem is reported as one ``ProfileError`` line naming the file, the problem and the fix.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from llm_emu.errors import ProfileError
from llm_emu.fsutil import atomic_write_json, atomic_write_parquet
from llm_emu.profile.features import STEP_COLUMNS

SCHEMA_VERSION = 1
META_FILE = "profile.json"
STEPS_FILE = "steps.parquet"
REQUESTS_FILE = "requests.parquet"
REQUEST_COLUMNS = ("prompt_len", "output_len", "finish_reason")


@dataclass(frozen=True)
class DeviceInfo:
    """The profiled device."""

    name: str
    """Device name as the driver reports it (e.g. "NVIDIA H100 80GB HBM3", "cpu")."""
    memory_bytes: int
    """Total device memory in bytes (what vLLM's gpu_memory_utilization is a fraction of)."""
    kind: str = "cuda"
    """Platform family: "cuda" or "cpu"."""


@dataclass(frozen=True)
class EngineSettings:
    """The *resolved* engine configuration of the profiled server (what vLLM actually ran with)."""

    block_size: int = 16
    """KV-cache block size in tokens."""
    async_scheduling: bool = True
    """Whether the scheduler overlapped the next step's scheduling with the device step."""
    max_num_batched_tokens: int = 8192
    """Token budget per step."""
    max_num_seqs: int = 1024
    """Request budget per step."""
    enable_chunked_prefill: bool = True
    """Whether long prompts were split across steps."""
    enable_prefix_caching: bool = True
    """Whether prefix caching was on."""
    gpu_memory_utilization: float = 0.92
    """Fraction of device memory vLLM was allowed to use."""
    num_gpu_blocks: int | None = None
    """KV-cache blocks vLLM allocated (None: compute the target device's budget like vLLM does)."""
    max_model_len: int | None = None
    """Context limit the server ran with (None: the model's)."""
    dtype: str = "bfloat16"
    """Model dtype."""
    tensor_parallel_size: int = 1
    """TP degree."""
    pipeline_parallel_size: int = 1
    """PP degree."""


@dataclass(frozen=True)
class Provenance:
    """Where the numbers come from."""

    kind: str = "measured"
    """"measured" (captured on the device) or "estimated" (a model of the device, e.g. aiconfigurator)."""
    created_at: str = ""
    """ISO-8601 time of capture or construction."""
    method: str = ""
    """How it was made (tool, workload, flags)."""
    detail: str = ""
    """Shown in labels instead of ``kind`` when set, e.g. "estimated, calibrated on 20 public measurements from
    4 sources"."""


@dataclass(frozen=True)
class ProfileMeta:
    """Contents of ``profile.json``."""

    device: DeviceInfo
    """The profiled device."""
    engine: EngineSettings
    """The resolved engine configuration of the profiled server."""
    model: str
    """Model name or path the server ran."""
    vllm_version: str
    """vLLM version of the profiled server."""
    provenance: Provenance = field(default_factory=Provenance)
    """Measured vs estimated, when, how."""
    model_config: dict[str, Any] = field(default_factory=dict)
    """The model's HF config.json contents (shapes the KV budget computation)."""
    oracle: str = "table"
    """Default latency oracle for this pack."""
    oracle_params: dict[str, Any] = field(default_factory=dict)
    """Parameters of the default oracle (e.g. the aic system name, formula coefficients)."""
    warmup: dict[str, Any] = field(default_factory=dict)
    """Extra device time of the first steps after an idle period, fitted by the capture
    (``llm_emu.profile.warmup.Warmup``; empty: the device does not slow down after idle)."""
    schema_version: int = SCHEMA_VERSION
    """Pack format version."""


T = TypeVar("T")


def _build(cls: type[T], data: Any, where: str) -> T:
    """Construct a frozen dataclass from a dict, rejecting unknown and missing keys with one clear line."""
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: expected an object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ProfileError(f"{where}: unknown field(s) {unknown}; valid fields are {sorted(known)}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ProfileError(f"{where}: {exc}") from None


def meta_from_dict(data: Any, where: str = META_FILE) -> ProfileMeta:
    """Parse and validate ``profile.json`` contents."""
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: expected a JSON object at top level")
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise ProfileError(
            f"{where}: schema_version {version!r} is not supported (this llm-emu reads {SCHEMA_VERSION}); "
            "re-capture the pack with this version of `llm-emu profile`"
        )
    data = dict(data)
    for key in ("device", "engine", "model", "vllm_version"):
        if key not in data:
            raise ProfileError(f"{where}: required field {key!r} is missing")
    data["device"] = _build(DeviceInfo, data["device"], f"{where}: device")
    data["engine"] = _build(EngineSettings, data["engine"], f"{where}: engine")
    data["provenance"] = _build(Provenance, data.get("provenance", {}), f"{where}: provenance")
    meta = _build(ProfileMeta, data, where)
    if meta.provenance.kind not in ("measured", "estimated"):
        raise ProfileError(
            f"{where}: provenance.kind {meta.provenance.kind!r} must be 'measured' or 'estimated'"
        )
    from llm_emu.profile.warmup import Warmup

    try:
        Warmup.from_dict(meta.warmup)
    except ValueError as exc:
        raise ProfileError(f"{where}: warmup: {exc}; re-capture the pack with `llm-emu profile`, or delete the "
                           "warmup field (no warm-up model)") from None
    return meta


@dataclass(frozen=True)
class ProfilePack:
    """A loaded profile: metadata plus the measured tables (``steps`` may be empty for estimated packs)."""

    meta: ProfileMeta
    steps: pd.DataFrame
    requests: pd.DataFrame | None = None
    path: Path | None = None

    @property
    def label(self) -> str:
        """Short human label, e.g. ``NVIDIA H100 80GB HBM3 (measured)``, with the provenance detail when set."""
        return f"{self.meta.device.name} ({self.meta.provenance.detail or self.meta.provenance.kind})"


def _check_columns(df: pd.DataFrame, required: tuple[str, ...], where: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ProfileError(f"{where}: missing column(s) {missing}; expected {list(required)}")


def load_pack(path: str | os.PathLike[str], require_steps: bool = True) -> ProfilePack:
    """Load and validate a pack directory.

    Raises:
        ProfileError: one line per problem (missing file, bad JSON, unknown field, wrong schema, empty table).
    """
    root = Path(path)
    if not root.is_dir():
        raise ProfileError(
            f"profile pack {str(root)!r} is not a directory; pass a pack made by `llm-emu profile` "
            "or a name like aic:h100_sxm"
        )
    meta_path = root / META_FILE
    if not meta_path.is_file():
        raise ProfileError(f"{meta_path}: file is missing; a pack needs {META_FILE} and {STEPS_FILE}")
    try:
        raw = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{meta_path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    meta = meta_from_dict(raw, str(meta_path))
    steps_path = root / STEPS_FILE
    if not steps_path.is_file():
        if require_steps:
            raise ProfileError(f"{steps_path}: file is missing; re-capture the pack with `llm-emu profile`")
        steps = pd.DataFrame(columns=list(STEP_COLUMNS))
    else:
        steps = _read_parquet(steps_path)
        _check_columns(steps, STEP_COLUMNS, str(steps_path))
        if require_steps and steps.empty:
            raise ProfileError(f"{steps_path}: the steps table is empty; re-capture with a longer workload")
        if (steps["latency_us"] < 0).any() or steps["latency_us"].isna().any():
            raise ProfileError(f"{steps_path}: latency_us has negative or missing values")
    requests = None
    req_path = root / REQUESTS_FILE
    if req_path.is_file():
        requests = _read_parquet(req_path)
        _check_columns(requests, REQUEST_COLUMNS, str(req_path))
    return ProfilePack(meta=meta, steps=steps, requests=requests, path=root)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise ProfileError(f"{path}: not a readable parquet file ({exc.__class__.__name__})") from None


def save_pack(pack: ProfilePack, path: str | os.PathLike[str]) -> Path:
    """Write a pack directory atomically (files are written to temp names, then renamed)."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(root / META_FILE, asdict(pack.meta), sort_keys=True)
    atomic_write_parquet(root / STEPS_FILE, pack.steps[list(STEP_COLUMNS)])
    if pack.requests is not None:
        atomic_write_parquet(root / REQUESTS_FILE, pack.requests)
    return root
