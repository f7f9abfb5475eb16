"""vLLM platform-plugin entry point (``vllm.platform_plugins`` group, see pyproject.toml).

vLLM calls every platform plugin in every process it starts (API server, EngineCore), possibly several times,
before any config is parsed. The emulator's platform must stay inert for plain ``vllm serve``, so it is gated
by one environment variable that ``llm-emu serve`` sets for the server and its children. Everything else
(profile, seed, trace) travels in vLLM's own ``--additional-config``.
"""

from __future__ import annotations

import os

#: Set to "1" by `llm-emu serve`; the only environment variable llm-emu reads.
GATE_ENV = "LLM_EMU_PLATFORM"


def platform_plugin() -> str | None:
    """Return the emulator platform's qualname when the gate is set, else None (vLLM picks its own)."""
    if os.environ.get(GATE_ENV) == "1":
        return "llm_emu.engine.platform.EmuPlatform"
    return None
