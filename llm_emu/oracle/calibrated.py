"""The calibrated GPU-free oracle: aiconfigurator's estimate plus a few terms fitted on public real-GPU runs.

aiconfigurator composes a step from per-kernel measurements; what a real vLLM step also pays (a fixed per-step
cost, prefill and mixed steps costing more than their kernels, attention growing with context) is added by
``CalibrationTerms``, fitted by ``llm-emu reference --fit`` and shipped per GPU in ``llm_emu/data/calibration/``.
Labelled "estimated" like the aic oracle; the profile's provenance line names the evidence.
"""

from __future__ import annotations

from typing import ClassVar

from llm_emu.errors import OracleError
from llm_emu.oracle.aic import AicOracle
from llm_emu.oracle.base import LatencyOracle
from llm_emu.oracle.calibration import CalibrationTerms
from llm_emu.profile.features import StepFeatures
from llm_emu.profile.pack import ProfilePack


class CalibratedOracle(LatencyOracle):
    """``CalibrationTerms`` applied once to ``AicOracle``'s estimate (ms inside, seconds out)."""

    name: ClassVar[str] = "calibrated"
    provenance: ClassVar[str] = "estimated"

    def __init__(self, pack: ProfilePack, seed: int = 0) -> None:
        super().__init__(pack, seed)
        terms = pack.meta.oracle_params.get("terms")
        if terms is None:
            raise OracleError("the calibrated oracle needs calibration terms; use --profile aic-cal:<gpu> "
                              "(e.g. aic-cal:h100_sxm)")
        self.terms = terms if isinstance(terms, CalibrationTerms) else CalibrationTerms.from_dict(terms)
        self.base = AicOracle(pack, seed)

    def expected(self, features: StepFeatures) -> float:
        if features.num_scheduled_tokens == 0:
            return 0.0
        aic_ms = self.base.expected(features) * 1e3
        ms = self.terms.step_ms_from(aic_ms, features.num_prefill_tokens, features.decode_context_tokens)
        return max(0.0, ms) * 1e-3
