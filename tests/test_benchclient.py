"""The benchmark-client wrapper: argv mapping onto vLLM's own parser, stdout routing, and an end-to-end run
against a real vLLM-CPU server."""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from llm_emu import benchclient
from llm_emu.benchclient import Workload, build_client_argv, parse_client_args, run_benchmark
from llm_emu.errors import WorkloadError
from llm_emu.server import ServerProcess, ServerSpec, free_port
from llm_emu.workload import sharegpt_path


def _args(workload: Workload, tokenizer_model: str = "tiny-llama", **kw: object) -> object:
    argv = build_client_argv(
        "http://127.0.0.1:9/",
        "tiny-llama",
        workload,
        tokenizer_model=tokenizer_model,
        result_dir=Path("/tmp/r"),
        result_filename="f.json",
        **kw,  # type: ignore[arg-type]
    )
    return parse_client_args(argv)


def test_sharegpt_workload_maps_onto_vllm_args() -> None:
    a = _args(
        Workload(num_prompts=20, request_rate=10, burstiness=0.5, seed=7, max_concurrency=4, ignore_eos=True),
        goodput={"ttft": 500, "tpot": 50.5},
    )
    v = vars(a)
    assert v["dataset_name"] == "sharegpt" and v["dataset_path"] == str(sharegpt_path())
    assert v["base_url"] == "http://127.0.0.1:9" and v["model"] == v["served_model_name"] == "tiny-llama"
    assert v["tokenizer_mode"] == "mistral" and v["tokenizer"].endswith("tiny-llama")
    assert (v["num_prompts"], v["request_rate"], v["burstiness"], v["seed"]) == (20, 10.0, 0.5, 7)
    assert v["max_concurrency"] == 4 and v["ignore_eos"] is True
    assert v["goodput"] == ["ttft:500", "tpot:50.5"]
    assert v["percentile_metrics"] == "ttft,tpot,itl,e2el" and v["metric_percentiles"] == "50,90,99"
    assert v["disable_tqdm"] and v["save_result"] and v["save_detailed"]
    assert v["result_dir"] == "/tmp/r" and v["result_filename"] == "f.json"
    assert v["sharegpt_output_len"] is None


def test_random_workload_and_defaults() -> None:
    v = vars(_args(Workload(dataset="random", random_input_len=64, random_output_len=16, sharegpt_output_len=9)))
    assert v["dataset_name"] == "random" and v["dataset_path"] is None
    assert (v["random_input_len"], v["random_output_len"]) == (64, 16)
    assert v["request_rate"] == float("inf") and v["max_concurrency"] is None and not v["ignore_eos"]
    assert v["goodput"] is None
    assert vars(_args(Workload(sharegpt_output_len=33)))["sharegpt_output_len"] == 33
    assert vars(_args(Workload(), extra_args=("--temperature", "0")))["temperature"] == 0.0


def test_server_tokenizer_flags_reach_the_client(tmp_path: Path) -> None:
    """A model dir with a Mistral tokenizer: the server's --tokenizer-mode must be the client's too."""
    server = ("--max-num-seqs", "4", "--tokenizer_mode=mistral", "--seed", "3", "--load-format", "dummy",
              "--additional-config", '{"tokenizer": "no"}', "--trust-remote-code")
    v = vars(_args(Workload(), tokenizer_model=str(tmp_path), server_args=server))
    assert (v["tokenizer"], v["tokenizer_mode"], v["trust_remote_code"]) == (str(tmp_path), "mistral", True)
    assert v["seed"] == 0 and v["max_concurrency"] is None  # other server flags stay on the server
    v = vars(_args(Workload(), tokenizer_model="tiny-llama",
                   server_args=("--tokenizer", "/tok", "--tokenizer-mode", "hf", "--tokenizer-mode", "slow",
                                "--no-trust-remote-code")))
    assert (v["tokenizer"], v["tokenizer_mode"], v["trust_remote_code"]) == ("/tok", "slow", False)
    # Without server flags: the shipped model's own tokenizer settings; a pass-through model keeps vLLM defaults.
    v = vars(_args(Workload(), tokenizer_model="org/m"))
    assert (v["tokenizer"], v["tokenizer_mode"], v["trust_remote_code"]) == ("org/m", "auto", False)


def test_unknown_dataset() -> None:
    with pytest.raises(WorkloadError, match="unknown dataset"):
        _args(Workload(dataset="nope"))


def test_stdout_routing_is_per_thread() -> None:
    mine, theirs = io.StringIO(), io.StringIO()
    real = sys.stdout
    started, release = threading.Event(), threading.Event()

    def other() -> None:
        with benchclient._stdout_to(theirs):
            started.set()
            release.wait(5)
            print("from other")

    t = threading.Thread(target=other)
    t.start()
    started.wait(5)
    with benchclient._stdout_to(mine):
        print("from main")
        release.set()
        t.join(5)
    assert sys.stdout is real
    assert mine.getvalue() == "from main\n" and theirs.getvalue() == "from other\n"


def test_plain_numbers() -> None:
    assert benchclient._plain(np.float64(1.5)) == 1.5 and type(benchclient._plain(np.float64(1.5))) is float
    assert benchclient._plain([np.int64(2), [np.float32(0.5)]]) == [2, [0.5]]
    assert benchclient._plain("x") == "x"


def test_unreachable_server_is_a_workload_error(tmp_path: Path) -> None:
    w = Workload(dataset="random", num_prompts=2, random_input_len=8, random_output_len=4)
    with pytest.raises(WorkloadError, match="completed no request"):
        run_benchmark(f"http://127.0.0.1:{free_port()}", "tiny-llama", w, tokenizer_model="tiny-llama",
                      result_dir=tmp_path)  # fmt: skip


@pytest.mark.slow
@pytest.mark.ci_e2e
def test_real_vllm_cpu_server_sharegpt_benchmark(tmp_path: Path) -> None:
    spec = ServerSpec(kind="real", model="tiny-llama", log_path=tmp_path / "server.log")
    t0 = time.monotonic()
    with ServerProcess(spec) as srv:
        startup = time.monotonic() - t0
        srv.reset_prefix_cache()
        t1 = time.monotonic()
        r = run_benchmark(
            srv.base_url,
            srv.served_model,
            Workload(dataset="sharegpt", num_prompts=20, request_rate=10, seed=0),
            tokenizer_model="tiny-llama",
            goodput={"ttft": 500, "tpot": 50},
            result_dir=tmp_path / "res",
        )
        bench = time.monotonic() - t1
        # From a worker thread too (sweeps call it from threads / Ray actors).
        out: dict[str, dict] = {}
        w = Workload(dataset="random", num_prompts=4, random_input_len=32, random_output_len=8)
        th = threading.Thread(
            target=lambda: out.update(r=run_benchmark(srv.base_url, srv.served_model, w, tokenizer_model="tiny-llama"))
        )
        th.start()
        th.join(120)
    print(f"server startup {startup:.1f} s, 20-prompt sharegpt benchmark {bench:.1f} s")
    assert not srv.running
    assert r["completed"] == 20 and r["failed"] == 0
    for key in (
        "request_throughput", "output_throughput", "total_token_throughput", "request_goodput",
        "mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "p90_ttft_ms", "p50_ttft_ms",
        "mean_tpot_ms", "p99_tpot_ms", "mean_itl_ms", "p99_itl_ms", "mean_e2el_ms", "p99_e2el_ms",
    ):  # fmt: skip
        assert isinstance(r[key], float) and r[key] > 0, key
    assert len(r["ttfts"]) == len(r["itls"]) == len(r["input_lens"]) == len(r["output_lens"]) == 20
    assert "generated_texts" not in r
    saved = json.loads(Path(r["result_file"]).read_text())
    assert saved["completed"] == 20 and Path(r["result_file"]).parent == tmp_path / "res"
    assert (tmp_path / "res" / "client.log").read_text().count("Serving Benchmark Result") == 1
    assert out["r"]["completed"] == 4
