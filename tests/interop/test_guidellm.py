"""guidellm (a real load generator from the vLLM project) at a fixed request rate against `llm-emu serve`.

guidellm's "ITL" is per request (last token - first token) / (output tokens - 1), i.e. vLLM's TPOT; with a fixed
10 ms emulated step it must read ~10 ms. bench/loadgen_agreement.py compares it with vLLM's client side by side.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llm_emu.server import ServerProcess
from tests.conftest import EMU_DECODE_MS

pytestmark = pytest.mark.slow

RATE = 5.0
NUM_REQUESTS = 20
OUTPUT_TOKENS = 16


def _prompts(path: Path, n: int) -> Path:
    lines = [json.dumps({"prompt": f"Request {i}: " + "tell me about the sea " * 20,
                         "output_tokens_count": OUTPUT_TOKENS}) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_guidellm_constant_rate(emu_server: ServerProcess, tmp_path: Path) -> None:
    pytest.importorskip("guidellm", reason="guidellm is in the dev extra: pip install -e '.[dev]'")
    out = tmp_path / "guidellm.json"
    cmd = [sys.executable, "-m", "guidellm", "run",
           "--backend", f"kind=openai_http,target={emu_server.base_url},request_format=/v1/completions",
           "--profile", f"kind=constant,rate={RATE:g}",
           "--constraint", f"kind=max_requests,count={NUM_REQUESTS}",
           "--data", f"kind=json_file,path={_prompts(tmp_path / 'prompts.jsonl', NUM_REQUESTS)}",
           "--output", f"kind=json,path={out}", "--disable-console-interactive"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    bench = json.loads(out.read_text())["benchmarks"][0]
    metrics = bench["metrics"]
    # guidellm 0.8 sometimes closes a constant-rate run while its last request is in flight: allow one short.
    assert metrics["request_totals"]["successful"] >= NUM_REQUESTS - 1 and metrics["request_totals"]["errored"] == 0
    assert metrics["output_token_count"]["successful"]["median"] == OUTPUT_TOKENS
    assert abs(metrics["requests_per_second"]["successful"]["mean"] - RATE) < 0.3 * RATE
    itl = metrics["inter_token_latency_ms"]["successful"]["median"]
    assert EMU_DECODE_MS * 0.9 <= itl <= EMU_DECODE_MS * 2.5
    assert metrics["time_to_first_token_ms"]["successful"]["median"] >= EMU_DECODE_MS * 0.9
