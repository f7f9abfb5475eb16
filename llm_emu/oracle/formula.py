"""A linear formula oracle: exact and transparent, for tests and back-of-envelope what-ifs."""

from __future__ import annotations

from typing import ClassVar

from llm_emu.errors import OracleError
from llm_emu.oracle.base import LatencyOracle
from llm_emu.profile.features import StepFeatures
from llm_emu.profile.pack import ProfilePack

#: Coefficients (microseconds) and their defaults.
DEFAULTS: dict[str, float] = {
    "base_us": 5000.0,
    "prefill_token_us": 20.0,
    "prefill_req_us": 0.0,
    "decode_req_us": 30.0,
    "context_token_us": 0.01,
}


class FormulaOracle(LatencyOracle):
    """latency = base + prefill_token*P + prefill_req*R + decode_req*D + context_token*KV (microseconds).

    Coefficients come from the pack's ``oracle_params`` (see ``DEFAULTS``); noiseless and deterministic.
    """

    name: ClassVar[str] = "formula"
    provenance: ClassVar[str] = "synthetic"

    def __init__(self, pack: ProfilePack, seed: int = 0) -> None:
        super().__init__(pack, seed)
        params = {k: v for k, v in pack.meta.oracle_params.items() if k != "system"}
        unknown = sorted(set(params) - set(DEFAULTS))
        if unknown:
            raise OracleError(f"formula oracle: unknown coefficient(s) {unknown}; valid are {sorted(DEFAULTS)}")
        self.coef = {**DEFAULTS, **{k: float(v) for k, v in params.items()}}
        if any(v < 0 for v in self.coef.values()):
            raise OracleError(f"formula oracle: coefficients must be >= 0, got {self.coef}")

    def expected(self, features: StepFeatures) -> float:
        c = self.coef
        us = (
            c["base_us"]
            + c["prefill_token_us"] * features.num_prefill_tokens
            + c["prefill_req_us"] * features.num_prefill_reqs
            + c["decode_req_us"] * features.num_decode_reqs
            + c["context_token_us"] * features.context_tokens
        )
        return us * 1e-6
