"""The latency-oracle contract: how long the device takes for one engine step."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from llm_emu.profile.features import StepFeatures
from llm_emu.profile.pack import ProfilePack


class LatencyOracle(ABC):
    """Predicts the device time of one engine step (forward pass + sampling) from its batch features.

    Contract (checked for every registered oracle by tests/oracle/test_contract.py):

    * Units: ``sample`` and ``expected`` return **seconds**, finite and ``>= 0``.
    * Determinism: two oracles built from the same pack and seed return the same sequence of values for the
      same sequence of ``sample`` calls.
    * Thread-safety: ``sample`` and ``expected`` may be called from several threads at once; oracles
      serialise their random state internally.
    * Monotone on average: ``expected`` does not decrease when tokens or requests are added to a step
      (a property of real devices that extrapolation must keep).
    * ``provenance`` says whether numbers are "measured", "estimated" or "synthetic"; every output that
      uses an estimated oracle is labelled so.
    """

    name: ClassVar[str] = ""
    provenance: ClassVar[str] = "measured"

    def __init__(self, pack: ProfilePack, seed: int = 0) -> None:
        self.pack = pack
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    @abstractmethod
    def expected(self, features: StepFeatures) -> float:
        """Mean device time of a step with these features, in seconds (no noise)."""

    def sample(self, features: StepFeatures) -> float:
        """One draw of the device time of a step with these features, in seconds.

        The default is the noiseless ``expected``; oracles with a latency distribution override it.
        """
        return max(0.0, self.expected(features))
