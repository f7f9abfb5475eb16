"""Shipped data is package data: found through importlib.resources inside the imported llm_emu."""

from __future__ import annotations

import json
from pathlib import Path

import llm_emu
from llm_emu.models import MODELS_DIR, model_config_path, shipped_models
from llm_emu.shipped import data_root, shipped_path


def test_data_lives_inside_the_package():
    package = Path(llm_emu.__file__).resolve().parent
    assert data_root().resolve() == package / "data"
    assert shipped_path("models", "tiny-llama", "config.json").is_file()
    assert MODELS_DIR == shipped_path("models")


def test_every_shipped_model_has_a_config_and_a_tokenizer_reference():
    names = shipped_models()
    assert {"llama-3.1-8b", "mistral-7b-v0.3", "tiny-llama"} <= set(names)
    for name in names:
        assert json.loads((MODELS_DIR / name / "config.json").read_text())["architectures"]
        assert json.loads((MODELS_DIR / name / "llm_emu.json").read_text())["tokenizer"]
        assert model_config_path(name) == MODELS_DIR / name / "config.json"


def test_shipped_names_do_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert model_config_path("tiny-llama") == MODELS_DIR / "tiny-llama" / "config.json"


def test_resolving_a_model_from_many_threads_at_once(tmp_path, monkeypatch) -> None:
    """Threads of one process resolve the same shipped model concurrently (a server start beside a client)."""
    from llm_emu.models import resolve_model
    from tests.factories import run_in_threads

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    link = Path(resolve_model("llama-3.1-8b").model) / "tokenizer.model.v3"

    def work() -> None:
        for _ in range(50):
            link.unlink(missing_ok=True)  # every call re-creates the tokenizer link, all threads at once
            resolve_model("llama-3.1-8b")

    errors = run_in_threads(work, 8)
    assert not errors, errors
