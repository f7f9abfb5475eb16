"""A small study against a real PostgreSQL (RDBStorage via a SQLAlchemy URL)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from search.runner import run_study
from search.storage import counted_trials
from tests.search.factories import create_task
from tests.search.synthetic import SyntheticEvaluator

pytestmark = pytest.mark.slow
PIP = "pip install psycopg2-binary"


def _pg_bin() -> Path | None:
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / "initdb").exists():
            return d
    return None


def _ensure_postgres() -> Path:
    if _pg_bin() is None and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=300)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], capture_output=True, timeout=600)
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed and `apt-get install postgresql` failed (offline?)")
    return bin_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(cmd: list[str]) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True, timeout=120)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    pytest.importorskip("psycopg2", reason=f"PostgreSQL driver missing: {PIP}")
    bin_dir = _ensure_postgres()
    tmp = Path(tempfile.mkdtemp(prefix="llm-emu-pg-"))
    shutil.chown(tmp, "postgres")
    data, port = tmp / "data", _free_port()
    _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"])
    _as_postgres(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(tmp / "log"),
            "-o",
            f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1",
            "start",
        ]
    )
    try:
        _as_postgres([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "optuna"])
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/optuna"
    finally:
        _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"])
        shutil.rmtree(tmp, ignore_errors=True)


def test_study_on_postgresql(tmp_path, postgres_url):
    task = create_task(tmp_path, n_trials=6, parallelism=2, storage=postgres_url)
    result = run_study(task, SyntheticEvaluator(), log=lambda _m: None)
    assert len(counted_trials(result.study)) == 6
    again = run_study(task, SyntheticEvaluator(), log=lambda _m: None)  # resume: nothing left to do
    assert len(again.study.trials) == len(result.study.trials)
    assert not (tmp_path / "study.db").exists()
