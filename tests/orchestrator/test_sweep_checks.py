"""Everything checkable before a server starts is checked by `llm-emu sweep` and `--dry-run` (issue 12, 1-2).

Each bad input is one line with file:line, exit 2, nothing started (no Ray) and nothing written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sweep_factories import write_spec

from llm_emu.cli import main

pytest.importorskip("vllm")
PROFILE = "formula:base_us=10000"
SEARCH = {"objective": "slo_throughput", "rate": 2, "n_trials": 3,
          "space": {"max_num_seqs": {"type": "int", "low": 8, "high": 64}}}


def _sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str], *flags: str, **spec: object) -> tuple[int, str, str]:
    import ray

    path = write_spec(tmp_path, **{"profile": PROFILE, **spec})
    out = tmp_path / "out"
    rc = main(["sweep", str(path), "-o", str(out), "--no-progress", *flags])
    assert not out.exists() and not ray.is_initialized()  # nothing written, nothing started
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _one_line(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip() and "Triton" not in line and "WARNING" not in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("dry", [(), ("--dry-run",)])
@pytest.mark.parametrize(("spec", "needles"), [
    ({"grid": {"max_num_batched_token": [2048]}},
     ("spec.yaml:", "grid.max_num_batched_token: not a vLLM engine arg; did you mean max_num_batched_tokens")),
    ({"grid": {}, "search": {**SEARCH, "space": {"max_num_seq": {"low": 8, "high": 64}}}},
     ("spec.yaml:", "search.space.max_num_seq: not a vLLM engine arg; did you mean max_num_seqs")),
    ({"grid": {"max_num_seqs": [64, "abc"]}},
     ("spec.yaml:", "grid.max_num_seqs[1]: vLLM refuses '--max-num-seqs abc'", "invalid int value: 'abc'")),
    ({"engine_args": {"max_model_len": 4096, "block_size": "abc"}},
     ("engine_args.block_size: vLLM refuses '--block-size abc'",)),
    ({"grid": {}, "search": {**SEARCH, "space": {"kv_cache_dtype": ["auto", "fp9"]}}},
     ("search.space.kv_cache_dtype: vLLM refuses '--kv-cache-dtype fp9'", "invalid choice")),
    ({"model": "no-such-org/no-such-model"}, ("spec.yaml:", "model: unknown model 'no-such-org/no-such-model'")),
    ({"profile": "/nonexistent/pack"}, ("spec.yaml:", "profile: ")),
    ({"profile": "aic:h999"}, ("profile: unknown aic system 'h999'",)),
    ({"clock": "virtual", "host_model": "/nonexistent/host.json"}, ("host_model: host model /nonexistent/host.json",)),
])
def test_bad_input_is_one_line_exit_2_before_anything_starts(tmp_path, capsys, spec, needles, dry):
    rc, _, err = _sweep(tmp_path, capsys, *dry, **spec)
    assert rc == 2
    _one_line(err, *needles)


def test_corrupt_pack_is_one_line(tmp_path, capsys):
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "profile.json").write_text("{ truncated")
    rc, _, err = _sweep(tmp_path, capsys, "--dry-run", profile=str(pack))
    assert rc == 2
    _one_line(err, "spec.yaml:", "profile: ")


def test_dry_run_of_a_search_plans_and_runs_nothing(tmp_path, capsys):
    rc, out, _ = _sweep(tmp_path, capsys, "--dry-run", grid={}, search=SEARCH)
    assert rc == 0
    assert "search: slo_throughput" in out and "nothing was started or written" in out
