"""Public real-GPU vLLM runs (llm_emu/data/reference), their replay through the emulator, and the oracle calibration."""
