"""PYTHONPATH for child interpreters (servers, Ray workers) so they import the same llm-emu as this process.

An installed llm-emu (wheel or editable) is importable by any interpreter of its environment, so nothing is
added; a source tree used through PYTHONPATH or the current directory is not, so its root is prepended.
Deciding by "is the import root a site directory" keeps a wheel install from ever pointing children at a
checkout, and a checkout from depending on an install.
"""

from __future__ import annotations

import os
import site
import sysconfig
from collections.abc import Mapping
from pathlib import Path

import llm_emu


def import_root() -> Path:
    """The directory the running ``llm_emu`` package was imported from (its parent)."""
    return Path(llm_emu.__file__).resolve().parent.parent


def _site_dirs() -> set[Path]:
    dirs = [*site.getsitepackages(), site.getusersitepackages(),
            sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return {Path(d).resolve() for d in dirs if d}


def child_pythonpath(environ: Mapping[str, str] | None = None) -> str:
    """The PYTHONPATH a child should get: the inherited one, led by the source root when not installed.

    Args:
        environ: the environment the child inherits (default: this process's).

    Returns:
        The value ('' when there is nothing to set).
    """
    env = os.environ if environ is None else environ
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    root = import_root()
    if root not in _site_dirs() and str(root) not in parts:
        parts.insert(0, str(root))
    return os.pathsep.join(parts)
