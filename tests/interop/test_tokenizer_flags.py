"""Tokenizer flags given to the server reach vLLM's benchmark client (llm-emu profile / validate / sweep).

A model directory holding only config.json and a Mistral SentencePiece tokenizer needs ``--tokenizer-mode
mistral`` on both sides; without it the client fails ("Couldn't instantiate the backend tokenizer").
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_emu.benchclient import Workload, run_benchmark
from llm_emu.errors import WorkloadError
from llm_emu.models import MODELS_DIR
from llm_emu.server import ServerProcess, ServerSpec
from tests.conftest import EMU_PROFILE

pytestmark = pytest.mark.slow

WORKLOAD = Workload(dataset="random", num_prompts=6, request_rate=float("inf"), random_input_len=32,
                    random_output_len=8, ignore_eos=True)


def mistral_model_dir(dest: Path) -> Path:
    """A model dir as users have them: config.json plus the Mistral v3 tokenizer (no llm_emu.json)."""
    spec = importlib.util.find_spec("mistral_common")
    assert spec is not None and spec.submodule_search_locations
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    dest.mkdir(parents=True)
    shutil.copy(MODELS_DIR / "tiny-llama" / "config.json", dest / "config.json")
    shutil.copy(data / "mistral_instruct_tokenizer_240323.model.v3", dest / "tokenizer.model.v3")
    return dest


@pytest.fixture(scope="module")
def mistral_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("mistral")
    spec = ServerSpec(kind="emulated", model=str(mistral_model_dir(tmp / "model")), profile=EMU_PROFILE,
                      log_path=tmp / "server.log",
                      vllm_args=("--tokenizer-mode", "mistral", "--load-format", "dummy", "--max-model-len", "1024"))
    with ServerProcess(spec) as srv:
        yield srv


def test_client_gets_the_servers_tokenizer_mode(mistral_server: ServerProcess, tmp_path: Path) -> None:
    """What profile and validate do: the server's argv goes along to the client."""
    model = mistral_server.spec.model
    res = run_benchmark(mistral_server.base_url, mistral_server.served_model, WORKLOAD, tokenizer_model=model,
                        result_dir=tmp_path, server_args=mistral_server.spec.vllm_args)
    assert res["completed"] == WORKLOAD.num_prompts
    with pytest.raises(WorkloadError, match="tokenizer"):  # the bug this guards against
        run_benchmark(mistral_server.base_url, mistral_server.served_model, WORKLOAD, tokenizer_model=model,
                      result_dir=tmp_path)


class _Running:
    """A measure-loop server handle for a server that is already up (entering and leaving change nothing)."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.base_url, self.served_model, self.startup_s = server.base_url, server.served_model, 0.0

    def reset_prefix_cache(self) -> None:
        self.server.reset_prefix_cache()

    def __enter__(self) -> _Running:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def test_sweep_trial_engine_args_reach_the_client(mistral_server: ServerProcess, tmp_path: Path) -> None:
    """A sweep trial with ``tokenizer_mode: mistral`` in its engine args benchmarks through the same path."""
    from llm_emu.measure.process import ServerLoop
    from orchestrator.runner import ServerRunner, TrialContext
    from orchestrator.trials import expand
    from tests.orchestrator.sweep_factories import make_spec

    spec = make_spec(tmp_path, model=mistral_server.spec.model, profile=EMU_PROFILE, grid={}, slo=None,
                     engine_args={"tokenizer_mode": "mistral", "load_format": "dummy", "max_model_len": 1024},
                     workload={"dataset": "random", "num_prompts": 6, "request_rates": ["inf"],
                               "random_input_len": 32, "random_output_len": 8, "ignore_eos": True})
    trials, _ = expand(spec)
    assert len(trials) == 1 and "--tokenizer-mode" in trials[0].vllm_flags()
    runner = ServerRunner(loop=ServerLoop(server_factory=lambda _spec: _Running(mistral_server)))
    (rate,) = runner(trials[0], TrialContext(out_dir=str(tmp_path), attempt=0))
    assert rate.metrics["completed"] == 6
