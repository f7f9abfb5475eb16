"""kill -9 of a controller mid-study, then re-run: exactly n_trials, no config run twice to completion."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.storage import counted_trials, quiet

ROOT = Path(__file__).resolve().parents[2]


def _controller(out: Path, n: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.search.controller_script", str(out), str(n)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _load(out: Path) -> optuna.Study:
    with quiet():
        return optuna.load_study(study_name="t-search", storage=f"sqlite:///{out / 'study.db'}")


def _complete(out: Path) -> int:
    if not (out / "study.db").exists():
        return 0
    try:
        return len(_load(out).get_trials(states=(TrialState.COMPLETE,)))
    except (KeyError, Exception):  # study not created yet / db being initialised
        return 0


def test_kill9_then_rerun_completes_exactly_n_trials(tmp_path):
    n, k = 10, 3
    proc = _controller(tmp_path, n)
    deadline = time.monotonic() + 60
    while _complete(tmp_path) < k and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.2)  # land inside a batch, so trials are RUNNING when killed
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    study = _load(tmp_path)
    assert k <= len(study.get_trials(states=(TrialState.COMPLETE,))) < n
    orphans = [t.number for t in study.get_trials(states=(TrialState.RUNNING,))]
    assert orphans, "kill landed between batches; the test wants RUNNING trials to recover"

    rerun = _controller(tmp_path, n)
    output = rerun.communicate(timeout=120)[0].decode()
    assert rerun.returncode == 0, output

    study = _load(tmp_path)
    counted = counted_trials(study)
    assert len(counted) == n
    assert all(t.state == TrialState.COMPLETE for t in counted)
    keys = [t.user_attrs["config_key"] for t in counted]
    assert len(keys) == len(set(keys)), "a config was completed twice"
    failed = {t.number for t in study.get_trials(states=(TrialState.FAIL,))}
    assert set(orphans) <= failed  # orphans were failed, and retried under new numbers
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
