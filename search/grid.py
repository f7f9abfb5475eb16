"""The grid as a proposal source: the cartesian product of the spec's ``grid`` values, all in one batch."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from search.evaluator import TrialOutcome, TrialRequest


class GridSource:
    """Every grid point once (Ray Tune's BasicVariantGenerator): ``engine_args`` + point, at every rate."""

    def __init__(self, engine_args: Mapping[str, Any], grid: Mapping[str, Sequence[Any]],
                 rates: Sequence[float]) -> None:
        self.engine_args = dict(engine_args)
        self.grid = {k: list(v) for k, v in grid.items()}
        self.rates = tuple(float(r) for r in rates)
        self._asked = False

    def points(self) -> list[dict[str, Any]]:
        """Grid points in order (the last key varies fastest); one empty point without a grid."""
        keys = list(self.grid)
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*self.grid.values())]

    def preview(self) -> list[TrialRequest]:
        """All requests, in grid order."""
        return [TrialRequest({**self.engine_args, **p}, self.rates, overrides=p, number=i)
                for i, p in enumerate(self.points())]

    def describe(self) -> list[str]:
        """One line: the grid's size."""
        sizes = " x ".join(f"{k} ({len(v)})" for k, v in self.grid.items()) or "the base config only"
        return [f"grid: {len(self.points())} points = {sizes}"]

    def ask(self) -> list[TrialRequest]:
        """Everything at once, then nothing."""
        if self._asked:
            return []
        self._asked = True
        return self.preview()

    def tell(self, request: TrialRequest, outcome: TrialOutcome) -> None:
        """Nothing to learn: a grid is not adaptive."""
