"""The empirical oracle: conditional sampling of raw measured step latencies.

For a query step it finds the ``k`` nearest measured steps in a normalised feature space and draws one of
their *raw* latencies (so tails and multi-modality survive), then transports it to the query point with a
fitted, non-negative linear model: ``draw = lat_j + model(query) - model(x_j)``. Inside the profiled range
the correction is small (neighbours are close); beyond it the model extrapolates instead of clamping to the
edge of the table. Unlike LLM-Emu, context (KV) length is a feature.

Steps with prompt tokens and pure decode steps are searched separately: in the normalised space a 20-token
prefill sits next to a 1-request decode step, but on a real device it costs about twice as much (a new
request's input preparation and the prefill path), which the linear transport does not recover. Measured on
vLLM-CPU (tiny-llama): small pure prefills were drawn 25 % too short when all steps were searched together.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.optimize import nnls
from scipy.spatial import cKDTree

from llm_emu.errors import OracleError
from llm_emu.oracle.base import LatencyOracle
from llm_emu.profile.features import StepFeatures
from llm_emu.profile.pack import ProfilePack

#: Features the neighbour search uses (prefill tokens dominate; decode batch and context next).
KNN_COLUMNS = ("num_prefill_tokens", "num_decode_reqs", "decode_context_tokens", "prefill_context_tokens")
DEFAULT_K = 32
MIN_PARTITION = 8
"""A step kind (with/without prompt tokens) with fewer measured steps is searched in the whole table."""


def design_matrix(x: np.ndarray) -> np.ndarray:
    """Regressors of the extrapolation model from raw feature rows (StepFeatures column order).

    Columns: 1, P, R_prefill, D, KV_decode, KV_prefill, P^2 (prefill attention), P*KV_prefill, [P > 0] (the
    fixed cost of a step with prompt tokens, whatever their number of requests).
    """
    p, rp, d, kvd, kvp = (x[:, i].astype(float) for i in range(5))
    return np.column_stack([np.ones(len(x)), p, rp, d, kvd, kvp, p * p * 1e-3, p * kvp * 1e-3, (p > 0) * 1.0])


class TableOracle(LatencyOracle):
    """Nearest-neighbour sampling of measured latencies with a fitted model for transport/extrapolation."""

    name: ClassVar[str] = "table"
    provenance: ClassVar[str] = "measured"

    def __init__(self, pack: ProfilePack, seed: int = 0, k: int = DEFAULT_K) -> None:
        super().__init__(pack, seed)
        steps = pack.steps
        if steps is None or len(steps) < 8:
            raise OracleError(
                f"table oracle needs a measured steps table with >= 8 rows, got {0 if steps is None else len(steps)}; "
                "capture one with `llm-emu profile` or use an aic:<gpu> profile"
            )
        self._raw = steps[
            ["num_prefill_tokens", "num_prefill_reqs", "num_decode_reqs", "decode_context_tokens",
             "prefill_context_tokens"]
        ].to_numpy(dtype=float)
        self._lat = steps["latency_us"].to_numpy(dtype=float) * 1e-6
        knn = steps[list(KNN_COLUMNS)].to_numpy(dtype=float)
        # Scale each axis by its 99th percentile so one unit ~ the profiled range of that feature.
        self._scale = np.maximum(np.percentile(knn, 99, axis=0), 1.0)
        self._k = k
        prefill = self._raw[:, 0] > 0
        everything = np.arange(len(steps))
        # (tree, row indices) for queries without / with prompt tokens.
        self._parts = tuple(self._partition(knn, rows if len(rows) >= MIN_PARTITION else everything)
                            for rows in (everything[~prefill], everything[prefill]))
        self._coef, _ = nnls(design_matrix(self._raw), self._lat)
        self._fit_at_rows = design_matrix(self._raw) @ self._coef

    def _model(self, f: StepFeatures) -> float:
        row = np.array([f.as_tuple()], dtype=float)
        return float((design_matrix(row) @ self._coef)[0])

    def expected(self, features: StepFeatures) -> float:
        idx = self._neighbours(features)
        shift = self._model(features) - self._fit_at_rows[idx]
        return float(max(0.0, float(np.mean(self._lat[idx] + shift))))

    def sample(self, features: StepFeatures) -> float:
        idx = self._neighbours(features)
        with self._lock:
            j = int(idx[self._rng.integers(len(idx))])
        return float(max(0.0, self._lat[j] + self._model(features) - self._fit_at_rows[j]))

    def _partition(self, knn: np.ndarray, rows: np.ndarray) -> tuple[cKDTree, np.ndarray]:
        return cKDTree(knn[rows] / self._scale), rows

    def _neighbours(self, f: StepFeatures) -> np.ndarray:
        tree, rows = self._parts[int(f.num_prefill_tokens > 0)]
        q = np.array([getattr(f, c) for c in KNN_COLUMNS], dtype=float) / self._scale
        _, idx = tree.query(q, k=min(self._k, len(rows)))
        return rows[np.atleast_1d(idx)]
