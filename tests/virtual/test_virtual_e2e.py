"""End to end: vLLM's real engine in virtual time (formula oracle, so device times are known)."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator

import pytest

from llm_emu.benchclient import Workload
from llm_emu.virtual import VirtualCell, run_virtual_cells

pytestmark = pytest.mark.slow

STEP_MS = 8.0
PROFILE = f"formula:base_us={STEP_MS * 1000:.0f},prefill_token_us=5,decode_req_us=20,context_token_us=0"
ARGS = ("--max-model-len", "2048", "--max-num-seqs", "64")
CELLS = [VirtualCell(Workload(num_prompts=40, request_rate=6.0, seed=1)),
         VirtualCell(Workload(num_prompts=40, request_rate=math.inf, seed=1, burstiness=1.0)),
         VirtualCell(Workload(num_prompts=20, request_rate=4.0, seed=1, max_concurrency=3))]


def _scalars(result: dict) -> dict:
    return {k: v for k, v in result.items() if not isinstance(v, list) and k not in ("virtual_wall_s", "date")}


@pytest.fixture
def cpu_hog() -> Iterator[None]:
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return run_virtual_cells("llama-3.1-8b", PROFILE, ARGS, CELLS, out_dir=tmp_path_factory.mktemp("v1"))


@pytest.mark.ci_e2e
def test_same_spec_same_numbers_beside_a_cpu_hog(first_run: list[dict], tmp_path, cpu_hog: None) -> None:
    again = run_virtual_cells("llama-3.1-8b", PROFILE, ARGS, CELLS, out_dir=tmp_path)
    for a, b in zip(first_run, again, strict=True):
        assert _scalars(a) == _scalars(b)
        assert a["ttfts"] == b["ttfts"] and a["itls"] == b["itls"]


@pytest.mark.ci_e2e
def test_device_time_and_client_semantics(first_run: list[dict]) -> None:
    light, burst, closed = first_run
    for r in first_run:
        assert r["completed"] == len(r["ttfts"]) and r["failed"] == 0
        assert r["clock"] == "virtual"
    # Light load: decode steps of a few requests take base + ~20 us each (+ a chunk of prefill now and then).
    assert STEP_MS <= light["median_itl_ms"] <= STEP_MS * 1.1
    assert light["duration"] >= 40 / 6.0
    assert burst["mean_ttft_ms"] > 2 * light["mean_ttft_ms"]  # everything at once queues
    events = sorted([(s, 1) for s in closed["start_times"]]
                    + [(s + lat, -1) for s, lat in zip(closed["start_times"], closed["latencies"], strict=True)])
    in_flight = peak = 0
    for _, delta in events:  # ends sort before starts at the same instant: a freed slot is reused at once
        in_flight += delta
        peak = max(peak, in_flight)
    assert peak == 3


def test_result_keys_are_the_wall_clock_keys(first_run: list[dict], tmp_path) -> None:
    from llm_emu.benchclient import run_benchmark
    from llm_emu.server import ServerProcess, ServerSpec

    spec = ServerSpec(kind="emulated", model="llama-3.1-8b", profile=PROFILE, vllm_args=ARGS,
                      log_path=tmp_path / "server.log")
    with ServerProcess(spec) as server:
        wall = run_benchmark(server.base_url, server.served_model, CELLS[0].workload, tokenizer_model="llama-3.1-8b",
                             result_dir=tmp_path)
    extra = {"clock", "virtual_wall_s"}
    assert set(first_run[0]) - extra == set(wall) - {"result_file"}
    assert first_run[0]["completed"] == wall["completed"]
    assert first_run[0]["total_input_tokens"] == wall["total_input_tokens"]
    assert first_run[0]["mean_tpot_ms"] == pytest.approx(wall["mean_tpot_ms"], rel=0.15)


@pytest.mark.ci_e2e
def test_a_packs_warmup_model_lengthens_the_first_step_after_idle(tmp_path) -> None:
    """The emulated worker adds the pack's warm-up extra to the step that starts after an idle device, and only
    there: at light load every prefill opens a warm-up run, so mean TTFT moves by the extra, mean ITL does not."""
    from llm_emu.profile.pack import save_pack
    from llm_emu.profile.warmup import IDLE_EDGES_S, POSITIONS, Warmup
    from tests.factories import make_pack

    extra_ms = 50.0
    params = {"base_us": STEP_MS * 1000, "prefill_token_us": 5, "decode_req_us": 20, "context_token_us": 0}
    runs = {}
    for name, rows in (("plain", ()), ("warm-up", tuple((extra_ms * 1e3,) + (0.0,) * (POSITIONS - 1)
                                                         for _ in IDLE_EDGES_S))):
        pack = make_pack(oracle="formula", oracle_params=params, warmup=Warmup(extra_us=rows).to_dict())
        save_pack(pack, tmp_path / name)
        cell = VirtualCell(Workload(dataset="random", random_input_len=64, random_output_len=16, num_prompts=8,
                                    request_rate=0.5, seed=3, ignore_eos=True))
        runs[name] = run_virtual_cells("llama-3.1-8b", str(tmp_path / name), ARGS, [cell],
                                       out_dir=tmp_path / f"v-{name}")[0]
    plain, warm = runs["plain"], runs["warm-up"]
    assert warm["mean_ttft_ms"] - plain["mean_ttft_ms"] == pytest.approx(extra_ms, abs=2.0)
    assert warm["mean_itl_ms"] == pytest.approx(plain["mean_itl_ms"], rel=0.01)
