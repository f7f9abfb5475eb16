"""The calibrated oracle applies each fitted term exactly once, in milliseconds, on top of aiconfigurator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_emu.errors import OracleError, ProfileError
from llm_emu.oracle import create_oracle
from llm_emu.oracle.calibration import Calibration, CalibrationTerms, parse_calibration, save_calibration
from llm_emu.profile.features import StepFeatures
from llm_emu.profile.resolve import resolve_profile
from tests.factories import LLAMA_8B

pytest.importorskip("aiconfigurator_core", reason="the calibrated oracle needs pip install 'llm-emu[aic]'")

DECODE = StepFeatures(num_decode_reqs=16, decode_context_tokens=16 * 800)
MIXED = StepFeatures(num_prefill_tokens=1500, num_prefill_reqs=2, num_decode_reqs=16, decode_context_tokens=16 * 800)


def _oracles(**terms: float):
    full = {"scale": 1.0, "step_ms": 0.0, "prefill_ms_per_ktok": 0.0, "decode_ctx_ms_per_ktok": 0.0, **terms}
    spec = ",".join(f"{k}={v}" for k, v in full.items())
    cal = create_oracle(resolve_profile(f"aic-cal:h100_sxm,{spec}", LLAMA_8B))
    aic = create_oracle(resolve_profile("aic:h100_sxm", LLAMA_8B))
    return cal, aic


def test_identity_terms_reproduce_aic() -> None:
    cal, aic = _oracles()
    for f in (DECODE, MIXED):
        assert cal.expected(f) == pytest.approx(aic.expected(f), rel=1e-12)


@pytest.mark.parametrize(("term", "value", "features", "added_s"), [
    ("step_ms", 0.8, DECODE, 0.8e-3),                              # once per step, ms -> s
    ("prefill_ms_per_ktok", 2.0, MIXED, 2.0e-3 * 1500 / 1000),      # per 1000 prefill tokens
    ("prefill_ms_per_ktok", 2.0, DECODE, 0.0),                      # no prefill, nothing added
    ("decode_ctx_ms_per_ktok", 0.05, DECODE, 0.05e-3 * 16 * 800 / 1000),
])
def test_each_term_adds_its_amount_once_in_seconds(term: str, value: float, features: StepFeatures,
                                                   added_s: float) -> None:
    cal, aic = _oracles(**{term: value})
    # Applied twice would add 2x; ms left unconverted would add 1000x; converted twice 1/1000x.
    assert cal.expected(features) - aic.expected(features) == pytest.approx(added_s, rel=1e-9, abs=1e-12)


def test_scale_multiplies_the_estimate_once() -> None:
    cal, aic = _oracles(scale=1.25)
    assert cal.expected(MIXED) / aic.expected(MIXED) == pytest.approx(1.25, rel=1e-9)


def test_empty_step_costs_nothing() -> None:
    cal, _ = _oracles(step_ms=1.0)
    assert cal.expected(StepFeatures()) == 0.0


def test_terms_are_validated() -> None:
    with pytest.raises(OracleError, match="valid terms are"):
        CalibrationTerms.from_dict({"step_us": 1})
    with pytest.raises(OracleError, match=">= 0"):
        CalibrationTerms(step_ms=-1)
    with pytest.raises(OracleError, match="scale must be > 0"):
        CalibrationTerms(scale=0)
    with pytest.raises(ProfileError, match="needs a number"):
        resolve_profile("aic-cal:h100_sxm,step_ms=fast", LLAMA_8B)
    with pytest.raises(ProfileError, match="quant=fp8"):
        resolve_profile("aic:h100_sxm,step_ms=1", LLAMA_8B)


def test_calibrated_oracle_needs_terms() -> None:
    with pytest.raises(OracleError, match="aic-cal:"):
        create_oracle(resolve_profile("aic:h100_sxm", LLAMA_8B), "calibrated")


def test_calibration_file_roundtrip_and_provenance(tmp_path: Path) -> None:
    cal = Calibration(gpu="h100_sxm", terms=CalibrationTerms(step_ms=0.5), rows=["a", "b", "c"],
                      sources=["s1", "s2"], fitted_at="2026-11-22", command="llm-emu calibrate --gpu h100_sxm")
    path = save_calibration(cal, tmp_path / "h100_sxm.json")
    back = parse_calibration(json.loads(path.read_text()), str(path))
    assert back == cal
    assert back.provenance == "estimated, calibrated on 3 public measurements from 2 sources"
    with pytest.raises(OracleError, match="unknown field"):
        parse_calibration({**json.loads(path.read_text()), "extra": 1}, "x.json")
    joint = Calibration(gpu="h200_sxm", terms=CalibrationTerms(), rows=["a"], sources=["s1"],
                        gpus=["h100_sxm", "h200_sxm"])
    assert joint.provenance == ("estimated, calibrated on 1 public measurements from 1 sources "
                                "(h100_sxm + h200_sxm)")


def test_help_lists_each_gpu_with_its_evidence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import llm_emu.oracle.calibration as calibration
    from llm_emu.profile.resolve import gpu_help

    monkeypatch.setattr(calibration, "CALIBRATION_DIR", tmp_path)
    text = gpu_help()
    assert "h100_sxm (aic only:" in text and "b200_sxm (aic only:" in text
    cal = Calibration(gpu="h100_sxm", terms=CalibrationTerms(step_ms=0.5), rows=["a", "b"], sources=["s1", "s2"],
                      held_out={"summary": {"ITL": {"mean_abs": 4.25, "max_abs": 9.0, "rows": 2}}})
    save_calibration(cal, tmp_path / "h100_sxm.json")
    text = gpu_help()
    assert "h100_sxm (aic-cal: estimated, calibrated on 2 public measurements from 2 sources; held out: |ITL| 4.2 %)" \
        in text


def test_fp8_quant_makes_the_estimate_faster() -> None:
    bf16 = create_oracle(resolve_profile("aic:h200_sxm", LLAMA_8B))
    fp8 = create_oracle(resolve_profile("aic:h200_sxm,quant=fp8", LLAMA_8B))
    assert fp8.expected(MIXED) < bf16.expected(MIXED)
    with pytest.raises(OracleError, match="unknown quant"):
        create_oracle(resolve_profile("aic:h200_sxm,quant=int3", LLAMA_8B))
