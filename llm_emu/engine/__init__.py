"""The vLLM side of the emulator: platform, executor and worker reached through vLLM's supported hooks."""
