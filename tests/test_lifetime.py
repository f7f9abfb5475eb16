"""No process outlives its owner: owner tags + watchdogs, reaping at the next start, EngineCore parent death.

Owners here are small Python subprocesses (never this pytest process), killed with SIGKILL so that none of
their own cleanup can run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_emu import lifetime
from llm_emu.server import ServerProcess, ServerSpec

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")

PY = sys.executable

# An owner that guards its children, then starts a "server" in a session of its own (like ServerProcess) with
# two children (like vLLM's EngineCore): one inherits the environment, one starts with an empty one (like a
# process whose setproctitle overwrote what /proc/PID/environ shows); and a child of its own with an empty
# environment (like Ray's agents: untagged, and reparented to init when their parent dies). It prints the four
# pids and its tag.
SERVER = """
import subprocess, sys, time
a = subprocess.Popen([sys.argv[1], "300"])
b = subprocess.Popen([sys.argv[1], "300"], env={})
print(a.pid, b.pid, flush=True)
time.sleep(300)
"""
OWNER = """
import shutil, subprocess, sys, time
from llm_emu.lifetime import guard_children
tag = guard_children() if sys.argv[1] == "guard" else None
server = subprocess.Popen([sys.executable, "-c", sys.argv[2], shutil.which("sleep")], stdout=subprocess.PIPE,
                          start_new_session=True, text=True)
bare = subprocess.Popen([shutil.which("sleep"), "300"], env={})
print(server.pid, server.stdout.readline().strip(), bare.pid, tag, flush=True)
time.sleep(300)
"""


def _wait_dead(pids: list[int], timeout_s: float) -> list[int]:
    """The pids still alive after up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while (left := [p for p in pids if lifetime.alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _start_owner(mode: str) -> tuple[subprocess.Popen[str], list[int], str]:
    owner = subprocess.Popen([PY, "-c", OWNER, mode, SERVER], stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
    assert owner.stdout is not None
    *pids, tag = owner.stdout.readline().split()
    return owner, [int(p) for p in pids], tag


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_children_die_with_a_sigkilled_owner():
    owner, pids, tag = _start_owner("guard")
    try:
        server, tagged, untagged, bare = pids
        assert tag in lifetime.tags_of(server) and tag in lifetime.tags_of(tagged)  # through a new session too
        assert lifetime.tags_of(untagged) == lifetime.tags_of(bare) == [] and lifetime.alive(bare)
        time.sleep(1.5)  # the watchdog records the owner's descendants once a second
        owner.kill()  # SIGKILL: no atexit, no finalizer
        owner.wait()
        assert _wait_dead(pids, 5.0) == []
    finally:
        _kill_all(pids)


def test_without_the_guard_the_server_outlives_its_owner():
    """The failure the guard exists for (and proof that the test above can fail)."""
    owner, pids, _ = _start_owner("none")
    try:
        owner.kill()
        owner.wait()
        time.sleep(1.0)
        assert all(lifetime.alive(p) for p in pids)
    finally:
        _kill_all(pids)


def test_orphans_are_reaped_at_the_next_start():
    """If the watchdog died too, the next owner's guard_children reaps what the dead owner left."""
    owner, pids, tag = _start_owner("guard")
    try:
        watchdogs = [p for p in _pids() if _cmdline(p).endswith(f"llm_emu.lifetime {tag}")]
        assert len(watchdogs) == 1 and not lifetime.tags_of(watchdogs[0])  # the watchdog itself is untagged
        _kill_all(watchdogs)
        owner.kill()
        owner.wait()
        time.sleep(0.5)
        assert all(lifetime.alive(p) for p in pids)  # nobody watching any more
        reaped = set(lifetime.reap_orphans())
        assert set(pids[:3]) <= reaped  # the tagged server, and its children
        assert _wait_dead(pids[:3], 5.0) == []
        assert lifetime.alive(pids[3])  # an untagged child whose parent is gone: only the watchdog knew it
    finally:
        _kill_all(pids)


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def test_guard_is_idempotent_and_tags_accumulate():
    code = ("import os, subprocess, sys\nfrom llm_emu.lifetime import guard_children, TAG_VAR\n"
            "a = guard_children(); b = guard_children(); assert a == b, (a, b)\n"
            "out = subprocess.run([sys.executable, '-c', 'from llm_emu.lifetime import guard_children, TAG_VAR; "
            "import os; t = guard_children(); print(os.environ[TAG_VAR])'], capture_output=True, text=True)\n"
            "print(a); print(out.stdout.strip())")
    # a fresh owner: not this test process's own tag (an earlier test in the session may have set one)
    env = {k: v for k, v in os.environ.items() if k != lifetime.TAG_VAR}
    proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=30, env=env)
    assert proc.returncode == 0, proc.stderr
    outer, inner = proc.stdout.split()
    assert inner.split(",")[0] == outer and len(inner.split(",")) == 2  # a child owner adds its own tag


def test_tags_name_their_owner_by_pid_and_start_time():
    me = os.getpid()
    assert lifetime.owner_alive(f"{me}:{lifetime.start_time(me)}:x")
    assert not lifetime.owner_alive(f"{me}:1:x")  # same pid, another start: a reused pid is not the owner
    assert lifetime.tags_of(2**22 + 12345) == []  # no such process
    assert lifetime.owner_alive("not-a-pid:x:y")  # someone else's value: never a reason to kill


# A process that starts a multiprocessing (spawn) child calling die_with_parent, like vLLM's API server
# starting its EngineCore; prints the child's pid once the guard is set.
PARENT = """
import multiprocessing as mp, sys, time
def child(ready):
    from llm_emu.lifetime import die_with_parent
    die_with_parent()
    ready.set()
    time.sleep(300)
if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=child, args=(ready,))
    p.start()
    ready.wait(60)
    print(p.pid, flush=True)
    time.sleep(300)
"""


def test_die_with_parent_kills_the_child_with_its_parent(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([PY, str(script)], stdout=subprocess.PIPE, text=True, start_new_session=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        assert lifetime.alive(child)
        parent.kill()
        parent.wait()
        assert _wait_dead([child], 2.0) == []
    finally:
        _kill_all([child, parent.pid])


def _children(pid: int) -> list[int]:
    out = []
    for child in _pids():
        try:
            stat = (Path("/proc") / str(child) / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            out.append(child)
    return out


@pytest.mark.slow
@pytest.mark.ci_e2e
@pytest.mark.timeout(300)
def test_sigkilled_api_server_takes_its_engine_core_along(tmp_path):
    """`llm-emu serve`'s EngineCore dies with a SIGKILLed API server (vLLM alone would leave it running)."""
    spec = ServerSpec(kind="emulated", model="tiny-llama", profile="formula:base_us=10000",
                      log_path=tmp_path / "server.log", vllm_args=("--max-model-len", "512"), startup_timeout_s=240)
    with ServerProcess(spec) as srv:
        assert srv.proc is not None
        cores = [p for p in _children(srv.proc.pid) if "EngineCore" in _cmdline(p)]
        assert len(cores) == 1, [(p, _cmdline(p)) for p in _children(srv.proc.pid)]
        os.kill(srv.proc.pid, signal.SIGKILL)  # the API server only: not its group
        start = time.monotonic()
        left = _wait_dead(cores, 10.0)
        gone_s = time.monotonic() - start
    assert left == [], "the EngineCore outlived its API server"
    assert gone_s < 2.0, f"the EngineCore took {gone_s:.1f} s to die"


SPIN = "import time\nend = time.monotonic() + float(__import__('sys').argv[1])\nwhile time.monotonic() < end: pass\n"


def test_cpu_and_runqueue_seconds_of_two_processes_sharing_one_core():
    # two busy loops pinned to one core: each gets about half of it and waits for it the other half
    if lifetime.runqueue_seconds(os.getpid()) is None:
        pytest.skip("no /proc/PID/schedstat on this kernel")
    core = min(os.sched_getaffinity(0))
    procs = [subprocess.Popen([PY, "-c", SPIN, "0.8"], preexec_fn=lambda: os.sched_setaffinity(0, {core}))
             for _ in range(2)]
    time.sleep(0.6)
    cpu = [lifetime.cpu_seconds(p.pid) for p in procs]
    wait = [lifetime.runqueue_seconds(p.pid) for p in procs]
    for p in procs:
        p.wait()
    assert all(c is not None and 0.1 < c < 0.55 for c in cpu), cpu
    assert all(w is not None and w > 0.1 for w in wait), wait
    assert lifetime.cpu_seconds(procs[0].pid) is None and lifetime.runqueue_seconds(procs[0].pid) is None  # gone
