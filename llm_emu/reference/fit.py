"""Fit the calibrated oracle's terms on reference rows and score them leave-one-source-out.

Parameters are the ``CalibrationTerms`` of the oracle plus, optionally, host terms of the real server that the
virtual clock charges (never the device steps): ``host_request_ms`` from a request's arrival to the scheduler
(HTTP, tokenisation: moves TTFT and E2E), and ``host_step_ms`` + ``host_step_per_req_ms`` x requests of EngineCore
CPU per step, charged only to rows whose server scheduled synchronously (vLLM before 0.14 by default: the CPU work
of a step then runs between GPU steps; async scheduling overlaps it with the GPU). The fit replays rows through
the emulator (``Evaluator``: the virtual clock in practice, deterministic) and minimises the weighted squared
log-ratio of emulated to published metrics (one residual per row and target family: ITL, TPOT, E2E, TTFT,
throughput; every source weighted the same in total, ``source_weights``) with a bounded Levenberg-Marquardt on a
finite-difference Jacobian updated by Broyden steps. Everything is deterministic: same rows and evaluator, same
terms.

Leave-one-source-out: for every source, the terms are refitted without that source's rows and scored on them,
so each reported error comes from terms that never saw the row's source.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from llm_emu.oracle.calibration import CalibrationTerms
from llm_emu.reference.compare import FAMILIES, emulated_value, row_family_errors, signed_errors
from llm_emu.reference.rows import ReferenceRow

Params = dict[str, float]
"""Parameter name -> value: CalibrationTerms fields and optionally HOST_PARAMS."""
#: row_id -> vLLM benchmark-client result dict, for the given parameters and rows.
Evaluator = Callable[[Params, Sequence[ReferenceRow]], Mapping[str, Mapping[str, Any]]]

HOST_PARAM = "host_request_ms"
HOST_STEP_PARAM = "host_step_ms"
HOST_STEP_REQ_PARAM = "host_step_per_req_ms"
HOST_PARAMS = (HOST_PARAM, HOST_STEP_PARAM, HOST_STEP_REQ_PARAM)
#: Bounds of each parameter (keep the oracle contract: >= 0, scale > 0) and the finite-difference step.
BOUNDS: dict[str, tuple[float, float]] = {
    "scale": (0.5, 2.0), "step_ms": (0.0, 10.0), "prefill_ms_per_ktok": (0.0, 40.0),
    "decode_ctx_ms_per_ktok": (0.0, 1.0), HOST_PARAM: (0.0, 200.0), HOST_STEP_PARAM: (0.0, 5.0),
    HOST_STEP_REQ_PARAM: (0.0, 0.2),
}
FD_STEP: dict[str, float] = {"scale": 0.03, "step_ms": 0.25, "prefill_ms_per_ktok": 1.0,
                             "decode_ctx_ms_per_ktok": 0.01, HOST_PARAM: 2.0, HOST_STEP_PARAM: 0.25,
                             HOST_STEP_REQ_PARAM: 0.01}
DEFAULT_FREE = ("scale", "step_ms", "prefill_ms_per_ktok", HOST_PARAM, HOST_STEP_PARAM, HOST_STEP_REQ_PARAM)
#: The uncalibrated estimate: aiconfigurator alone, no host time.
IDENTITY: Params = {**asdict(CalibrationTerms()), **dict.fromkeys(HOST_PARAMS, 0.0)}


def split_params(params: Mapping[str, float]) -> tuple[CalibrationTerms, tuple[float, float, float]]:
    """(oracle terms, (host ms per request, per step, per request in a step)) of a parameter dict."""
    terms = {k: v for k, v in params.items() if k not in HOST_PARAMS}
    request, step, step_req = (float(params.get(name, 0.0)) for name in HOST_PARAMS)
    return CalibrationTerms.from_dict(terms), (request, step, step_req)


def _families(families: Sequence[str] | None) -> list[tuple[tuple[str, ...], float, float]]:
    """FAMILIES' (members, target, weight) entries of ``families`` (all when None), in FAMILIES order."""
    unknown = sorted(set(families or ()) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown metric famil(ies) {unknown}; valid are {list(FAMILIES)}")
    return [spec for name, spec in FAMILIES.items() if families is None or name in families]


def residual_owners(rows: Sequence[ReferenceRow], families: Sequence[str] | None = None) -> list[str]:
    """The row_id of each entry of ``residuals(rows, ..., families)``, in order."""
    return [row.row_id for row in rows for members, _, _ in _families(families)
            if any(m in row.published for m in members)]


def source_weights(rows: Sequence[ReferenceRow]) -> dict[str, float]:
    """row_id -> weight that gives every source the same total weight (the weights average 1 over the rows).

    Without it, the source with the most rows (one harness, one server, one model) decides the fit, and leaving
    it out swings the terms to whatever the few other rows say."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.source_id] = counts.get(row.source_id, 0) + 1
    return {row.row_id: len(rows) / (len(counts) * counts[row.source_id]) for row in rows}


def residuals(rows: Sequence[ReferenceRow], results: Mapping[str, Mapping[str, Any]],
              families: Sequence[str] | None = None) -> np.ndarray:
    """sqrt(family weight * source weight) * log(emulated / published), one per row and family (first published
    member) of ``families`` (default: all); ``source_weights`` balances the sources."""
    out: list[float] = []
    balance = source_weights(rows)
    specs = _families(families)
    for row in rows:
        res = results[row.row_id]
        for members, _, family_weight in specs:
            weight = family_weight * balance[row.row_id]
            metric = next((m for m in members if m in row.published), None)
            if metric is None:
                continue
            emu = emulated_value(row, metric, res)
            pub = row.published[metric]
            ok = emu is not None and emu > 0 and pub > 0
            out.append(math.sqrt(weight) * (math.log(emu / pub) if ok else 0.0))  # type: ignore[operator]
    return np.asarray(out, dtype=float)


@dataclass(frozen=True)
class FitResult:
    """Outcome of one fit."""

    params: Params
    """Fitted parameters (all of them, free and fixed)."""
    cost: float
    """0.5 * sum of squared residuals at the terms."""
    start_cost: float
    """The same at the start."""
    iterations: int
    """Levenberg-Marquardt iterations run."""
    evaluations: int
    """Replays of the row set."""
    rows: tuple[str, ...]
    """Rows fitted on."""
    free: tuple[str, ...] = ()
    """The fitted parameters, in the order of the Jacobian's columns."""
    residual: np.ndarray = field(default_factory=lambda: np.zeros(0), compare=False, repr=False)
    """Residuals at the solution (rows in ``residual_owners`` order)."""
    jacobian: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), compare=False, repr=False)
    """d residual / d free parameter near the solution (finite differences, Broyden-updated)."""
    families: tuple[str, ...] | None = None
    """The metric families the fit's residuals cover (None: all of FAMILIES)."""


class _Problem:
    """Residuals as a function of the free terms' vector, with a cache of evaluated points."""

    def __init__(self, rows: Sequence[ReferenceRow], evaluate: Evaluator, start: Mapping[str, float],
                 free: Sequence[str], families: Sequence[str] | None = None) -> None:
        self.rows, self.evaluate, self.start, self.free = list(rows), evaluate, {**IDENTITY, **start}, list(free)
        self.families = families
        self.cache: dict[tuple[float, ...], np.ndarray] = {}

    def terms(self, x: np.ndarray) -> Params:
        return {**self.start, **{name: float(v) for name, v in zip(self.free, x, strict=True)}}

    def clip(self, x: np.ndarray) -> np.ndarray:
        lo = np.array([BOUNDS[n][0] for n in self.free])
        hi = np.array([BOUNDS[n][1] for n in self.free])
        return np.round(np.clip(x, lo, hi), 6)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        key = tuple(np.round(x, 6))
        if key not in self.cache:
            self.cache[key] = residuals(self.rows, self.evaluate(self.terms(x), self.rows), self.families)
        return self.cache[key]

    def jacobian(self, x: np.ndarray, r0: np.ndarray) -> np.ndarray:
        cols = []
        for j, name in enumerate(self.free):
            h = FD_STEP[name] if x[j] + FD_STEP[name] <= BOUNDS[name][1] else -FD_STEP[name]
            xh = x.copy()
            xh[j] += h
            cols.append((self(xh) - r0) / h)
        return np.stack(cols, axis=1)


def fit_terms(rows: Sequence[ReferenceRow], evaluate: Evaluator, start: Mapping[str, float] | None = None,
              free: Sequence[str] = DEFAULT_FREE, max_iter: int = 6, tol: float = 1e-3,
              families: Sequence[str] | None = None) -> FitResult:
    """Bounded Levenberg-Marquardt fit of the ``free`` parameters (the others stay at ``start``/IDENTITY) on the
    errors of the metric ``families`` (default: all of FAMILIES)."""
    _families(families)  # unknown names fail before any replay
    problem = _Problem(rows, evaluate, start or {}, free, families)
    x = np.array([problem.start[n] for n in free], dtype=float)
    r = problem(x)
    cost0 = cost = 0.5 * float(r @ r)
    jac, fresh, lam, it = problem.jacobian(x, r), True, 1e-2, 0
    for it in range(1, max_iter + 1):  # noqa: B007 - `it` is reported
        jtj, grad = jac.T @ jac, jac.T @ r
        step = np.linalg.solve(jtj + lam * np.diag(np.diag(jtj) + 1e-9), -grad)
        x_new = problem.clip(x + step)
        r_new = problem(x_new)
        cost_new = 0.5 * float(r_new @ r_new)
        if cost_new < cost:
            dx = x_new - x
            jac = jac + np.outer(r_new - r - jac @ dx, dx) / float(dx @ dx)  # Broyden: no new finite differences
            gain = (cost - cost_new) / max(cost, 1e-12)
            x, r, cost, fresh, lam = x_new, r_new, cost_new, False, max(lam / 3, 1e-6)
            if gain < tol:
                break
            continue
        lam *= 4
        if not fresh:  # re-linearise once before shrinking further
            jac, fresh = problem.jacobian(x, r), True
        elif lam > 1e4:
            break
    return FitResult(params=problem.terms(x), cost=cost, start_cost=cost0, iterations=it,
                     evaluations=len(problem.cache), rows=tuple(row.row_id for row in rows), free=tuple(free),
                     residual=r, jacobian=jac, families=tuple(families) if families is not None else None)


@dataclass(frozen=True)
class HeldOut:
    """Leave-one-source-out outcome."""

    folds: dict[str, Params]
    """source_id -> parameters fitted without that source."""
    errors: dict[str, dict[str, float]]
    """row_id -> family -> signed % error with its fold's terms."""
    summary: dict[str, dict[str, float]] = field(default_factory=dict)
    """family -> {"mean_abs": ..., "max_abs": ..., "rows": n}."""


def summarize(errors: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """family -> mean and max |signed error| over rows (and the number of rows)."""
    out: dict[str, dict[str, float]] = {}
    for family in FAMILIES:
        values = [abs(e[family]) for e in errors.values() if family in e]
        if values:
            out[family] = {"mean_abs": round(sum(values) / len(values), 2), "max_abs": round(max(values), 2),
                           "rows": len(values)}
    return out


def _fold_step(full: FitResult, keep: np.ndarray, reweight: np.ndarray) -> Params:
    """One damped Gauss-Newton step from the all-rows solution using only the residuals in ``keep``, each scaled
    by ``reweight`` (the fold's source balance over the all-rows one)."""
    jac, r = full.jacobian[keep] * reweight[:, None], full.residual[keep] * reweight
    jtj = jac.T @ jac
    step = np.linalg.solve(jtj + 1e-2 * np.diag(np.diag(jtj) + 1e-9), -(jac.T @ r))
    lo = np.array([BOUNDS[n][0] for n in full.free])
    hi = np.array([BOUNDS[n][1] for n in full.free])
    x = np.clip(np.array([full.params[n] for n in full.free]) + step, lo, hi)
    return {**full.params, **{n: round(float(v), 6) for n, v in zip(full.free, x, strict=True)}}


def leave_one_source_out(rows: Sequence[ReferenceRow], evaluate: Evaluator, full: FitResult,
                         refit: bool = False, max_iter: int = 4) -> HeldOut:
    """Parameters without each source in turn, scored on that source's rows.

    By default each fold is one Gauss-Newton step from the all-rows fit ``full`` with its Jacobian restricted to
    the fold's rows (residuals are per row, so that is the fold's own linearisation); ``refit`` runs a full fit
    per fold instead (``max_iter`` iterations, from ``full``).
    """
    owners = np.array(residual_owners(rows, full.families))
    full_weight = source_weights(rows)
    folds: dict[str, Params] = {}
    errors: dict[str, dict[str, float]] = {}
    for source in sorted({r.source_id for r in rows}):
        held = [r for r in rows if r.source_id == source]
        train = [r for r in rows if r.source_id != source]
        if not train:
            continue
        if refit:
            params = fit_terms(train, evaluate, full.params, full.free, max_iter=max_iter,
                               families=full.families).params
        else:
            keep = ~np.isin(owners, [r.row_id for r in held])
            fold_weight = source_weights(train)
            reweight = np.sqrt([fold_weight[o] / full_weight[o] for o in owners[keep]])
            params = _fold_step(full, keep, reweight)
        folds[source] = params
        results = evaluate(params, held)
        for row in held:
            errors[row.row_id] = row_family_errors(signed_errors(row, results[row.row_id]))
    return HeldOut(folds=folds, errors=errors, summary=summarize(errors))


def score(rows: Sequence[ReferenceRow], evaluate: Evaluator, terms: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """row_id -> family -> signed % error of parameters ``terms`` on ``rows`` (transferred or baseline ones)."""
    results = evaluate(dict(terms), rows)
    return {row.row_id: row_family_errors(signed_errors(row, results[row.row_id])) for row in rows}
