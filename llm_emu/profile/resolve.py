"""Turn a ``--profile`` argument into a ProfilePack: a pack dir, ``aic:<gpu>``, ``aic-cal:<gpu>`` or ``formula:...``.

``aic:<gpu>`` is aiconfigurator's uncalibrated estimate; ``aic-cal:<gpu>`` adds the terms fitted on public real-GPU
runs (``llm_emu/data/calibration/<gpu>.json``). Both take options after the GPU: ``quant=fp8`` (FP8 weights in the
estimate) and, for aic-cal, term overrides such as ``step_ms=0.8`` (what the calibration fit tries).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import pandas as pd

from llm_emu.errors import OracleError, ProfileError
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

#: Evidence behind GPUs that have no calibration file (those with one show the file's provenance line).
GPU_EVIDENCE: dict[str, str] = {
    "h100_sxm": "checked against 20 public vLLM runs from 4 sources, mean |ITL| error 7.1 %, |TTFT| 28.7 %",
    "h200_sxm": "checked against 10 aiconfigurator silicon runs replayed as its benchmark template runs them, "
                "TPOT -14 to -35 %, mean |TTFT| error 27.6 %",
    "a100_sxm": "checked against 1 public vLLM run, ITL +7.9 %",
    "b200_sxm": "aiconfigurator data only, no public run checked",
}
"""Evidence behind each GPU's estimate (docs/FIDELITY.md, "GPU-free calibration"; measured 2026-11-22, h200_sxm
2026-12-03)."""

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


def gpu_help() -> str:
    """Every GPU with the evidence behind its estimate, for help texts and docs."""
    from llm_emu.oracle.calibration import available_calibrations, load_calibration

    calibrated = set(available_calibrations())
    parts = []
    for gpu in sorted(GPU_MEMORY_BYTES):
        if gpu in calibrated:
            cal = load_calibration(gpu)
            held = cal.held_out.get("summary", {})
            scores = ", ".join(f"|{fam}| {held[fam]['mean_abs']:.1f} %" for fam in ("ITL", "TPOT", "E2E", "TTFT")
                               if fam in held)
            parts.append(f"{gpu} (aic-cal: {cal.provenance}" + (f"; held out: {scores}" if scores else "") + ")")
        else:
            parts.append(f"{gpu} (aic only: {GPU_EVIDENCE.get(gpu, 'aiconfigurator data, no public run checked')})")
    return "; ".join(parts)


def _aic_options(kind: str, rest: str) -> tuple[str, dict[str, Any]]:
    """``h100_sxm,quant=fp8,step_ms=1`` -> ("h100_sxm", {"quant": "fp8", "step_ms": 1.0})."""
    gpu, *items = rest.split(",")
    if gpu not in GPU_MEMORY_BYTES:
        raise ProfileError(f"unknown {kind} system {gpu!r}; valid are {sorted(GPU_MEMORY_BYTES)} "
                           f"(e.g. {kind}:h100_sxm)")
    options: dict[str, Any] = {}
    for item in filter(None, items):
        key, sep, value = item.partition("=")
        if not sep:
            raise ProfileError(f"{kind} profile: {item!r} is not key=value (e.g. {kind}:{gpu},quant=fp8)")
        if key == "quant":
            options["quant"] = value
            continue
        if kind == "aic":
            raise ProfileError(f"aic profile: unknown option {key!r}; aic takes quant=fp8 (terms go to aic-cal:)")
        try:
            options[key] = float(value)
        except ValueError:
            raise ProfileError(f"aic-cal profile: {item!r} needs a number, e.g. {kind}:{gpu},step_ms=0.8") from None
    return gpu, options


def _calibrated(gpu: str, overrides: dict[str, float]) -> tuple[dict[str, Any], str]:
    """The calibrated oracle's parameters and provenance line for ``gpu`` (file terms, then overrides)."""
    from llm_emu.oracle.calibration import CalibrationTerms, load_calibration

    if overrides and set(overrides) >= {"scale", "step_ms", "prefill_ms_per_ktok", "decode_ctx_ms_per_ktok"}:
        terms, line = CalibrationTerms.from_dict(overrides), "estimated, calibration terms given explicitly"
    else:
        try:
            cal = load_calibration(gpu)
        except OracleError as exc:
            raise ProfileError(str(exc)) from None
        terms = CalibrationTerms.from_dict({**cal.terms.__dict__, **overrides})
        line = cal.provenance if not overrides else "estimated, calibration terms overridden explicitly"
    return {"terms": dict(terms.__dict__)}, line


def _aic_pack(kind: str, rest: str, model_config: dict[str, Any] | None, vllm_version: str) -> ProfilePack:
    gpu, options = _aic_options(kind, rest)
    quant = options.pop("quant", None)
    params: dict[str, Any] = {"system": gpu, **({"quant": quant} if quant else {})}
    detail, oracle = "", "aic"
    if kind == "aic-cal":
        extra, detail = _calibrated(gpu, options)
        params.update(extra)
        oracle = "calibrated"
    name, mem = GPU_MEMORY_BYTES[gpu]
    method = f"aiconfigurator-core kernel database, system {gpu}, backend vllm"
    method += f", {quant} weights" if quant else ""
    meta = ProfileMeta(
        device=DeviceInfo(name=name, memory_bytes=mem, kind="cuda"),
        engine=CUDA_DEFAULTS,
        model=str((model_config or {}).get("_name_or_path", "")),
        vllm_version=vllm_version,
        provenance=Provenance(kind="estimated", created_at=_now(), method=method + (f"; {detail}" if detail else ""),
                              detail=detail),
        model_config=dict(model_config or {}),
        oracle=oracle,
        oracle_params=params,
    )
    return ProfilePack(meta=meta, steps=_empty_steps())


def resolve_profile(ref: str, model_config: dict[str, Any] | None = None, vllm_version: str = "") -> ProfilePack:
    """Load or construct the profile named by ``ref``.

    Args:
        ref: a pack directory, ``aic:<system>`` (e.g. aic:h100_sxm), ``aic-cal:<system>`` (calibrated) or
            ``formula:[k=v,...]``.
        model_config: the model's HF config.json (needed by aic packs and the KV budget).
        vllm_version: recorded in constructed packs.
    """
    kind, sep, rest = ref.partition(":")
    if sep and kind in ("aic", "aic-cal"):
        return _aic_pack(kind, rest, model_config, vllm_version)
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
