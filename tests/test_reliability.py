"""Reliability probes (docs/RELIABILITY.md): bad input fails fast with one line, bad requests get 400s.

Fast tests check the one-line errors before anything starts (`llm-emu serve` with an unknown model or a busy
port, `llm-emu report` on damaged results) and the request refusals piece by piece; the slow ones probe a running
emulated server the way a user would (malformed HTTP, best_of, loopback bind, an unbounded-rate burst).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from llm_emu.benchclient import Workload, run_benchmark
from llm_emu.cli import main
from llm_emu.engine import compat
from llm_emu.engine.middleware import RefuseUnemulatedFields
from llm_emu.models import load_model_config, model_config_path
from llm_emu.serve import REQUEST_MIDDLEWARE
from llm_emu.server import ServerProcess

PROFILE = "formula:base_us=10000"


def _one_line_error(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("llm-emu ")
    for needle in needles:
        assert needle in lines[0], lines[0]


# --- llm-emu serve: checked before vLLM starts -------------------------------------------------------------------

@pytest.mark.parametrize("profile", ["aic:h100_sxm", PROFILE])
def test_unknown_model_is_one_line(profile: str, capsys: pytest.CaptureFixture[str]) -> None:
    # --dry-run: the checks run first; were they to pass, the command is printed instead of vLLM exec'd.
    assert main(["serve", "--profile", profile, "--model", "no-such-org/no-such-model", "--dry-run"]) == 2
    _one_line_error(capsys.readouterr().err, "unknown model 'no-such-org/no-such-model'", "tiny-llama")


def test_model_dir_without_config_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--profile", PROFILE, "--model", str(tmp_path), "--dry-run"]) == 2
    _one_line_error(capsys.readouterr().err, "has no config.json")


def test_hf_cache_model_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An HF id whose config.json is in the local HF cache counts as known (serve runs with HF_HUB_OFFLINE=1)."""
    from huggingface_hub import constants

    snap = tmp_path / "models--org--m" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    (tmp_path / "models--org--m" / "refs").mkdir()
    (tmp_path / "models--org--m" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert model_config_path("org/m") == snap / "config.json"
    assert load_model_config("org/m")["hidden_size"] == 64
    assert model_config_path("org/other") is None and load_model_config("org/other") == {}


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_busy_port_is_one_line_before_vllm_starts(busy_port: int) -> None:
    # A subprocess: were the check to pass, `llm-emu serve` would exec vLLM in place of this process.
    proc = subprocess.Popen([sys.executable, "-m", "llm_emu.cli", "serve", "--profile", PROFILE, "--model",
                             "tiny-llama", "--port", str(busy_port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 2, err
    _one_line_error(err, f"127.0.0.1:{busy_port}", "--port")


def test_serve_listens_on_loopback_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--profile", PROFILE, "--model", "tiny-llama", "--dry-run"]) == 0
    cmd = capsys.readouterr().out.split()
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--middleware") + 1] == REQUEST_MIDDLEWARE


# --- llm-emu report on damaged results ----------------------------------------------------------------------------

def test_truncated_results_parquet_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "results.parquet"
    pd.DataFrame({"trial_hash": ["a"] * 50, "status": ["ok"] * 50, "request_rate": range(50)}).to_parquet(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert main(["report", str(tmp_path)]) == 2
    _one_line_error(capsys.readouterr().err, "results.parquet is unreadable", "llm-emu sweep")


def test_truncated_manifest_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pd.DataFrame({"trial_hash": ["a"], "status": ["ok"]}).to_parquet(tmp_path / "results.parquet")
    (tmp_path / "sweep.json").write_text('{"name": "x", "pru')
    assert main(["report", str(tmp_path)]) == 2
    _one_line_error(capsys.readouterr().err, "sweep.json is unreadable")


# --- best_of: vLLM drops it before the engine, so it is refused at the HTTP layer ---------------------------------

@pytest.mark.parametrize(("body", "refused"), [
    ({"prompt": "x", "best_of": 3}, True), ({"messages": [], "best_of": 2}, True), ({"best_of": 1}, False),
    ({"best_of": None}, False), ({"best_of": True}, False), ({"prompt": "best_of"}, False), (["best_of"], False),
])
def test_refused_body_field(body: Any, refused: bool) -> None:
    result = compat.refused_body_field(body)
    assert (result is not None) == refused
    if result is not None:
        assert result[1] == "best_of" and "best_of=" in result[0]


class _EchoApp:
    """An ASGI app that answers 200 with the body it read (through whatever ``receive`` it was given)."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


def _call(app: Any, method: str, chunks: list[bytes]) -> tuple[int, bytes]:
    incoming = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "method": method, "path": "/v1/completions"}, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_middleware_refuses_best_of_and_passes_everything_else_untouched() -> None:
    app = _EchoApp()
    mw = RefuseUnemulatedFields(app)
    status, body = _call(mw, "POST", [b'{"prompt": "hi", ', b'"best_of": 4}'])
    error = json.loads(body)["error"]
    assert status == 400 and error["param"] == "best_of" and error["code"] == 400 and app.calls == 0
    for chunks in ([b'{"prompt": "hi", ', b'"best_of": 1}'], [b'{"prompt": "x"}'], [b"not json best_of"], [b""]):
        assert _call(mw, "POST", chunks) == (200, b"".join(chunks))
    assert _call(mw, "GET", [b""]) == (200, b"")
    assert app.calls == 5


# --- a running emulated server, probed like a user would ---------------------------------------------------------

def _post(srv: ServerProcess, path: str, body: Any, raw: bool = False) -> requests.Response:
    data = body if raw else json.dumps(body)
    return requests.post(srv.base_url + path, data=data, headers={"content-type": "application/json"}, timeout=60)


@pytest.mark.slow
@pytest.mark.ci_e2e
def test_malformed_and_unemulated_requests_get_400(emu_server: ServerProcess) -> None:
    model = emu_server.served_model
    bad: list[tuple[str, Any, bool]] = [
        ("/v1/completions", b'{"model": "x", "prompt": "hi"', True),  # truncated JSON
        ("/v1/completions", {"model": model}, False),  # no prompt
        ("/v1/completions", {"model": model, "prompt": "hi", "max_tokens": -1}, False),
        ("/v1/chat/completions", {"model": model, "messages": "not a list"}, False),
        ("/v1/completions", {"model": model, "prompt": "hi", "max_tokens": 4, "n": 2}, False),
        ("/v1/completions", {"model": model, "prompt": "hi", "max_tokens": 4, "best_of": 3}, False),
        ("/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": "hi"}],
                                  "max_tokens": 4, "best_of": 3}, False),
    ]
    for path, body, raw in bad:
        r = _post(emu_server, path, body, raw)
        assert r.status_code == 400, (path, body, r.status_code, r.text)
        assert r.json()["error"]["message"]
    assert "best_of=3" in _post(emu_server, *bad[-1][:2]).json()["error"]["message"]
    ok = _post(emu_server, "/v1/completions", {"model": model, "prompt": "hi", "max_tokens": 4, "best_of": 1})
    assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] == 4
    assert requests.get(emu_server.base_url + "/health", timeout=10).status_code == 200


@pytest.mark.slow
@pytest.mark.ci_e2e
def test_server_listens_on_loopback_only(emu_server: ServerProcess) -> None:
    import psutil

    listening = [c for c in psutil.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == emu_server.port]
    assert listening and {c.laddr.ip for c in listening} == {"127.0.0.1"}


@pytest.mark.slow
def test_unbounded_rate_burst_completes_and_server_stays_healthy(emu_server: ServerProcess, tmp_path: Path) -> None:
    w = Workload(dataset="random", num_prompts=200, request_rate=float("inf"), random_input_len=64,
                 random_output_len=16, ignore_eos=True)
    res = run_benchmark(emu_server.base_url, emu_server.served_model, w, tokenizer_model="tiny-llama",
                        result_dir=tmp_path, server_args=emu_server.spec.vllm_args)
    assert res["completed"] == 200 and not any(res.get("errors") or [])
    assert requests.get(emu_server.base_url + "/health", timeout=10).status_code == 200
