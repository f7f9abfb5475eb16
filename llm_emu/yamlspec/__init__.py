"""Typed YAML: parse a document remembering file:line of every key, build frozen dataclasses from it.

Every spec llm-emu reads (sweep and search specs) goes through here, so every error is one line that starts
with ``file:line: dotted.path:`` and says the fix.
"""

from __future__ import annotations

from llm_emu.yamlspec.marks import Located, Path_, dotted, load_located, load_located_file
from llm_emu.yamlspec.typed import build, coerce, fail

__all__ = ["Located", "Path_", "build", "coerce", "dotted", "fail", "load_located", "load_located_file"]
