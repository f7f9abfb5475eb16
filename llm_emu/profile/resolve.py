"""Turn a ``--profile`` argument into a ProfilePack: a pack directory, ``aic:<gpu>`` or ``formula:[k=v,...]``."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import pandas as pd

from llm_emu.errors import ProfileError
from llm_emu.profile.features import STEP_COLUMNS
from llm_emu.profile.pack import DeviceInfo, EngineSettings, ProfileMeta, ProfilePack, Provenance, load_pack

#: Total memory as torch.cuda reports it (what vLLM's gpu_memory_utilization is a fraction of).
GPU_MEMORY_BYTES: dict[str, tuple[str, int]] = {
    "h100_sxm": ("NVIDIA H100 80GB HBM3", int(79.11 * 2**30)),
    "h200_sxm": ("NVIDIA H200", int(139.81 * 2**30)),
    "a100_sxm": ("NVIDIA A100-SXM4-80GB", int(79.15 * 2**30)),
    "b200_sxm": ("NVIDIA B200", int(178.36 * 2**30)),
    "l40s": ("NVIDIA L40S", int(44.39 * 2**30)),
}

#: What vLLM 0.32 resolves on a CUDA device when the user passes no flags (its defaults for a GPU, which differ
#: from those it picks on the CPU platform: see EngineSettings).
CUDA_DEFAULTS = EngineSettings()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _empty_steps() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64" if c == "latency_us" else "int64") for c in STEP_COLUMNS})


def _parse_params(text: str) -> dict[str, float]:
    params: dict[str, float] = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        try:
            params[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ProfileError(f"formula profile: {item!r} is not key=value with a number, e.g. formula:base_us=4000")
    return params


def resolve_profile(ref: str, model_config: dict[str, Any] | None = None, vllm_version: str = "") -> ProfilePack:
    """Load or construct the profile named by ``ref``.

    Args:
        ref: a pack directory, ``aic:<system>`` (e.g. aic:h100_sxm) or ``formula:[k=v,...]``.
        model_config: the model's HF config.json (needed by aic packs and the KV budget).
        vllm_version: recorded in constructed packs.
    """
    kind, sep, rest = ref.partition(":")
    if sep and kind == "aic":
        if rest not in GPU_MEMORY_BYTES:
            raise ProfileError(f"unknown aic system {rest!r}; valid are {sorted(GPU_MEMORY_BYTES)} (e.g. aic:h100_sxm)")
        name, mem = GPU_MEMORY_BYTES[rest]
        meta = ProfileMeta(
            device=DeviceInfo(name=name, memory_bytes=mem, kind="cuda"),
            engine=CUDA_DEFAULTS,
            model=str((model_config or {}).get("_name_or_path", "")),
            vllm_version=vllm_version,
            provenance=Provenance(kind="estimated", created_at=_now(),
                                  method=f"aiconfigurator-core kernel database, system {rest}, backend vllm"),
            model_config=dict(model_config or {}),
            oracle="aic",
            oracle_params={"system": rest},
        )
        return ProfilePack(meta=meta, steps=_empty_steps())
    if sep and kind == "formula":
        meta = ProfileMeta(
            device=DeviceInfo(name="formula (synthetic)", memory_bytes=int(79.11 * 2**30), kind="cuda"),
            engine=CUDA_DEFAULTS,
            model=str((model_config or {}).get("_name_or_path", "")),
            vllm_version=vllm_version,
            provenance=Provenance(kind="estimated", created_at=_now(), method=f"formula oracle {rest or 'defaults'}"),
            model_config=dict(model_config or {}),
            oracle="formula",
            oracle_params=_parse_params(rest),
        )
        return ProfilePack(meta=meta, steps=_empty_steps())
    pack = load_pack(ref)
    if model_config and not pack.meta.model_config:
        pack = ProfilePack(meta=ProfileMeta(**{**pack.meta.__dict__, "model_config": dict(model_config)}),
                           steps=pack.steps, requests=pack.requests, path=pack.path)
    return pack
