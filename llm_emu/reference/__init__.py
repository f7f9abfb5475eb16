"""Public real-GPU vLLM runs (profiles/reference), their replay through the emulator, and the oracle calibration."""
