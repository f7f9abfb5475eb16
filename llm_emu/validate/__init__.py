"""`llm-emu validate`: the same workload on real vLLM and on the emulator; signed % error per metric."""
