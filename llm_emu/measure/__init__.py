"""The one measure loop (serve a config, run vLLM's benchmark per rate) behind a small registry.

``measure_loop()`` gives the default implementation ("server": a vLLM server process); implementations are
imported only when built.
"""

from __future__ import annotations

import importlib
from typing import Any

from llm_emu.errors import EmuError
from llm_emu.measure.base import BenchRun, MeasureLoop, Measurement, MeasureSession, MeasureTarget, OnResult, Pinning

DEFAULT_LOOP = "server"

# name -> "module:Class"; modules are imported only when the loop is built.
_REGISTRY: dict[str, str] = {
    "server": "llm_emu.measure.process:ServerLoop",
    "virtual": "llm_emu.virtual.measure:VirtualMeasureLoop",
}


def register_loop(name: str, target: str) -> None:
    """Register a MeasureLoop class by ``"module:Class"`` path.

    Raises:
        EmuError: when the name is taken.
    """
    if name in _REGISTRY:
        raise EmuError(f"measure loop {name!r} is already registered ({_REGISTRY[name]})")
    _REGISTRY[name] = target


def available_loops() -> list[str]:
    """Registered measure loop names."""
    return sorted(_REGISTRY)


def measure_loop(name: str = DEFAULT_LOOP, **options: Any) -> MeasureLoop:
    """A new instance of the loop registered under ``name``, built with ``options`` (e.g. ``host=`` for
    "virtual")."""
    if name not in _REGISTRY:
        raise EmuError(f"unknown measure loop {name!r}; valid loops are {available_loops()}")
    module, _, cls = _REGISTRY[name].partition(":")
    loop: MeasureLoop = getattr(importlib.import_module(module), cls)(**options)
    return loop


__all__ = ["BenchRun", "MeasureLoop", "MeasureSession", "MeasureTarget", "Measurement", "OnResult", "Pinning",
           "available_loops", "measure_loop", "register_loop"]
