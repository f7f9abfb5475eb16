"""Latency oracles behind a small registry (heavy backends imported lazily)."""

from __future__ import annotations

import importlib

from llm_emu.errors import OracleError
from llm_emu.oracle.base import LatencyOracle
from llm_emu.profile.pack import ProfilePack

# name -> "module:Class"; modules are imported only when the oracle is built.
_REGISTRY: dict[str, str] = {
    "formula": "llm_emu.oracle.formula:FormulaOracle",
    "table": "llm_emu.oracle.table:TableOracle",
    "aic": "llm_emu.oracle.aic:AicOracle",
    "calibrated": "llm_emu.oracle.calibrated:CalibratedOracle",
}


def register_oracle(name: str, target: str) -> None:
    """Register an oracle class by ``"module:Class"`` path.

    Raises:
        OracleError: when the name is taken.
    """
    if name in _REGISTRY:
        raise OracleError(f"oracle {name!r} is already registered ({_REGISTRY[name]})")
    _REGISTRY[name] = target


def available_oracles() -> list[str]:
    """Registered oracle names."""
    return sorted(_REGISTRY)


def oracle_class(name: str) -> type[LatencyOracle]:
    """The class registered under ``name``."""
    if name not in _REGISTRY:
        raise OracleError(f"unknown oracle {name!r}; valid oracles are {available_oracles()}")
    module, _, cls = _REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def create_oracle(pack: ProfilePack, name: str | None = None, seed: int = 0) -> LatencyOracle:
    """Build the oracle ``name`` (default: the pack's own) for a pack."""
    return oracle_class(name or pack.meta.oracle)(pack, seed=seed)


__all__ = ["LatencyOracle", "available_oracles", "create_oracle", "oracle_class", "register_oracle"]
