"""The emulator's settings as they travel inside vLLM's own ``--additional-config`` (key ``llm_emu``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from llm_emu.errors import EmuError
from llm_emu.profile.pack import ProfilePack

KEY = "llm_emu"


@dataclass(frozen=True)
class EmuSettings:
    """What the emulated worker needs to know."""

    profile: str
    """Pack directory, ``aic:<gpu>`` or ``formula:[k=v,...]``."""
    oracle: str | None = None
    """Oracle name (None: the pack's default)."""
    seed: int = 0
    """Seed of latency draws and synthetic tokens."""
    trace: str | None = None
    """JSON-lines file to append one record per step to (None: no trace)."""
    clock: str = "wall"
    """"wall": steps take real time (a server driven by real clients); "virtual": steps advance a simulated
    clock and nothing sleeps (only valid in-process under ``llm_emu.virtual``)."""

    def to_additional_config(self) -> str:
        """The JSON for ``--additional-config``."""
        return json.dumps({KEY: asdict(self)})

    @classmethod
    def from_vllm_config(cls, vllm_config: Any) -> EmuSettings:
        raw = (vllm_config.additional_config or {}).get(KEY)
        if not isinstance(raw, dict):
            raise EmuError("the emulated worker needs --additional-config '{\"llm_emu\": {\"profile\": ...}}'; "
                           "start it with `llm-emu serve`")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def load_pack(self, model_config: Any) -> ProfilePack:
        """Resolve the profile against the server's model config."""
        from llm_emu.profile.resolve import resolve_profile

        cfg_path = Path(str(model_config.model)) / "config.json"
        hf = json.loads(cfg_path.read_text()) if cfg_path.is_file() else model_config.hf_config.to_dict()
        import vllm

        return resolve_profile(self.profile, hf, vllm_version=vllm.__version__)
