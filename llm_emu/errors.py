"""One exception root for everything llm-emu reports to a user.

Each error's message is one line that names the problem and the fix; the CLI prints it without a traceback.
"""

from __future__ import annotations


class EmuError(Exception):
    """Root of all llm-emu errors meant for the user."""


class ProfileError(EmuError):
    """A profile pack is missing, malformed, or inconsistent with the requested engine."""


class OracleError(EmuError):
    """A latency oracle cannot be built or asked (unknown name, missing backend, bad features)."""


class UnsupportedFeatureError(EmuError):
    """The request or engine flag asks for something the emulator cannot honour faithfully."""


class SpecError(EmuError):
    """A sweep or search spec (YAML) is invalid."""


class ServerError(EmuError):
    """A vLLM server (real or emulated) failed to start or died."""


class WorkloadError(EmuError):
    """A dataset or benchmark workload cannot be prepared."""


class ModelError(EmuError):
    """A model argument cannot be resolved offline (no shipped config, model dir or cached HF config)."""


class ResultsError(EmuError):
    """A results directory or file is missing or unreadable."""
