"""A SIGKILLed sweep controller leaves nothing behind: its local Ray cluster (agents included) and the trial's
server die within seconds (llm_emu.lifetime)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_factories import make_spec, write_spec

from orchestrator.trials import expand

PROC = Path("/proc")
DRIVER = """
import sys
from orchestrator.pipeline import SweepOptions, run_sweep
from orchestrator.spec import load_spec
from orchestrator.testing import FakeRunner
sys.path.insert(0, {tests!r})
from sweep_factories import sweep_args
spec = load_spec({spec!r})
args = sweep_args({spec!r}, "-o", {out!r}, "--no-progress", "--no-report", "--num-cpus", "2")
sys.exit(run_sweep(spec, SweepOptions.from_args(args),
                   FakeRunner(marker_dir={markers!r}, block_first_attempt_s=300, spawn_server=True)))
"""


def _session(sid: int) -> dict[int, str]:
    """Live (non-zombie) processes of session ``sid``: pid -> command line."""
    out = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            out[int(entry.name)] = cmd
    return out


def _kill_sessions(*sids: int) -> None:
    """SIGKILL what is left of sessions this test started (scanned now, so no pid can have been reused)."""
    for sid in sids:
        for pid in _session(sid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.slow
@pytest.mark.ci_e2e
@pytest.mark.timeout(180)
def test_sigkilled_controller_leaves_no_ray_or_server_process(tmp_path):
    grid = {"max_num_seqs": [16]}
    spec_path = write_spec(tmp_path, grid=grid)
    (trial,), _ = expand(make_spec(tmp_path, grid=grid))
    markers = tmp_path / "markers"
    markers.mkdir()
    code = DRIVER.format(tests=str(Path(__file__).parent), spec=str(spec_path), out=str(tmp_path / "out"),
                         markers=str(markers))
    log = tmp_path / "driver.log"
    with open(log, "wb") as out:
        driver = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=out, stderr=out)
    server_marker = markers / f"{trial.hash}.0.server"
    server_sid = 0
    try:
        deadline = time.monotonic() + 120
        while not server_marker.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server_marker.exists(), f"the trial never started: {log.read_text()[-2000:]}"
        time.sleep(0.5)  # the marker is written right after the stand-in server started
        server_sid = int(server_marker.read_text())
        server = _session(server_sid)  # `sh` and its `sleep`, a session of their own
        ray_procs = {p: c for p, c in _session(driver.pid).items() if p != driver.pid}
        names = " | ".join(ray_procs.values())
        assert "raylet" in names and "ray::DashboardAgent" in names and "ray::RuntimeEnvAgent" in names, names
        assert len(server) == 2, server
        os.kill(driver.pid, signal.SIGKILL)  # the controller only: no cleanup of its own can run
        driver.wait()
        start = time.monotonic()
        while (left := {**_session(driver.pid), **_session(server_sid)}) and time.monotonic() - start < 30:
            time.sleep(0.2)
        gone_s = time.monotonic() - start
        assert not left, f"still alive {gone_s:.0f} s after the controller was killed: {left}"
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        _kill_sessions(driver.pid, *([server_sid] if server_sid else []))
