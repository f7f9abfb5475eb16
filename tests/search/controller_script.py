"""A search controller run as a subprocess by test_kill_resume (argv: out_dir n_trials)."""

from __future__ import annotations

import sys
from pathlib import Path

from search.runner import run_study
from tests.search.factories import create_task
from tests.search.synthetic import SyntheticEvaluator

if __name__ == "__main__":
    out, n = Path(sys.argv[1]), int(sys.argv[2])
    task = create_task(out, n_trials=n, parallelism=2, heartbeat_interval_s=1, grace_period_s=2)
    run_study(task, SyntheticEvaluator(delay_s=0.5), log=lambda m: print(m, flush=True))
