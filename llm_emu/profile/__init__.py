"""Profile packs: what the emulator is told about the profiled device and engine."""

from llm_emu.profile.features import STEP_COLUMNS, StepFeatures
from llm_emu.profile.pack import (
    DeviceInfo,
    EngineSettings,
    ProfileMeta,
    ProfilePack,
    Provenance,
    load_pack,
    save_pack,
)

__all__ = [
    "STEP_COLUMNS",
    "DeviceInfo",
    "EngineSettings",
    "ProfileMeta",
    "ProfilePack",
    "Provenance",
    "StepFeatures",
    "load_pack",
    "save_pack",
]
