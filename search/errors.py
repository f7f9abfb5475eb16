"""Errors raised by `search/`, under llm-emu's one exception root."""

from __future__ import annotations

from llm_emu.errors import EmuError, SpecError

__all__ = ["SearchError", "SpecError"]


class SearchError(EmuError):
    """A search cannot proceed (no evaluator, unusable metrics, storage trouble)."""
