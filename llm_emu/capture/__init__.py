"""`llm-emu profile`: capture a profile pack from a real vLLM server through vLLM's ``--worker-cls`` hook."""
