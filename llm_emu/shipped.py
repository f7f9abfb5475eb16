"""Files that ship inside the package, under ``llm_emu/data/``: model configs (``models/<name>/``) and any
other data llm-emu needs at run time (profile packs, calibration files, reference runs).

They are package data (pyproject.toml ``[tool.setuptools.package-data]``) found through importlib.resources,
never relative to a source checkout: a wheel installed with ``pip install .`` finds the same files as an
editable install or a checkout on PYTHONPATH (scripts/wheel_check.sh proves it in CI).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from llm_emu.errors import EmuError

DATA_DIR = "data"
"""The data directory inside the ``llm_emu`` package."""


def data_root() -> Path:
    """``llm_emu/data`` of the imported llm_emu, as a file-system path (vLLM is handed directories)."""
    root = importlib.resources.files("llm_emu") / DATA_DIR
    if not isinstance(root, Path):  # e.g. imported from a zip: vLLM and aiconfigurator need real files
        raise EmuError(f"llm-emu's data files are not on disk ({root}); install llm-emu with pip (not as a zip)")
    return root


def shipped_path(*parts: str) -> Path:
    """A path under ``llm_emu/data`` (it need not exist; callers check), e.g. ``shipped_path("models")``."""
    return data_root().joinpath(*parts)
