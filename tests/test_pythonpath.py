"""Children get the source root on PYTHONPATH only when llm-emu is not installed in a site directory."""

from __future__ import annotations

import os
import site
from pathlib import Path

from llm_emu import pythonpath


def test_a_source_tree_leads_the_inherited_path(monkeypatch, tmp_path):
    monkeypatch.setattr(pythonpath, "import_root", lambda: tmp_path)
    assert pythonpath.child_pythonpath({"PYTHONPATH": "/a:/b"}) == os.pathsep.join([str(tmp_path), "/a", "/b"])
    assert pythonpath.child_pythonpath({}) == str(tmp_path)
    already = os.pathsep.join(["/a", str(tmp_path)])
    assert pythonpath.child_pythonpath({"PYTHONPATH": already}) == already  # not added twice


def test_an_installed_llm_emu_adds_nothing(monkeypatch):
    monkeypatch.setattr(pythonpath, "import_root", lambda: Path(site.getsitepackages()[0]).resolve())
    assert pythonpath.child_pythonpath({}) == ""
    assert pythonpath.child_pythonpath({"PYTHONPATH": "/a"}) == "/a"


def test_import_root_holds_the_packages():
    root = pythonpath.import_root()
    assert (root / "llm_emu" / "__init__.py").is_file()
