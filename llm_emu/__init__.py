"""llm-emu: a serving-native emulator of vLLM.

vLLM's own server, scheduler, KV-cache manager and output processing run unpatched on CPU; only the device
forward pass is replaced by a step latency drawn from a profile measured on real hardware.
"""

from __future__ import annotations

__version__ = "0.1.0"
