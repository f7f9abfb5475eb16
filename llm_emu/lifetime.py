"""No process outlives its owner: what a process starts is killed once that process is gone.

Left alone, three kinds of process outlive the one that started them: a vLLM server (it runs in its own
process group, so that ``ServerProcess.stop`` can end all of it, which also shields it from its owner's
death), Ray's agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent`` keep running under init after a
SIGKILLed driver), and vLLM's EngineCore (it keeps running after a SIGKILLed API server). Two guards:

- **Owner watchdogs.** An owner (the sweep controller before it starts a local Ray cluster, each trial actor,
  any process that starts a server) calls :func:`guard_children`, which starts a watchdog
  (``python -m llm_emu.lifetime``) that records the owner's descendants while the owner lives and, once it is
  gone, SIGKILLs every one of them still running, with their children. The owner also appends a tag naming
  itself to ``LLM_EMU_OWNER_TAGS`` in its environment, inherited by everything it starts from then on, which
  catches a process that left the tree before the watchdog saw it. (Tags alone are not enough: a process that
  renames itself, as Ray's agents and vLLM's EngineCore do with setproctitle, overwrites the memory that
  /proc/PID/environ shows.) The watchdog forks away from the owner at once (Ray kills a dead worker's direct
  children; the watchdog must outlive it). Should a watchdog die as well, the next owner to start reaps the
  tagged orphans: processes carrying a tag whose owner is gone (:func:`reap_orphans`).
- **EngineCore.** The emulator's executor calls :func:`die_with_parent` inside the EngineCore: the kernel
  SIGKILLs it the moment the API server that started it dies.

A tag is ``<pid>:<start time>:<random>``: pid plus the kernel's start time identify the owner even after its
pid is reused. Linux only (reads /proc); elsewhere no guard is started.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

PROC = Path("/proc")
TAG_VAR = "LLM_EMU_OWNER_TAGS"
"""Environment variable listing (comma-separated) the owners of a process: tags, not settings."""
PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal the kernel sends this process when its parent dies."""


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first), or None if the process is gone."""
    try:
        with open(f"{PROC}/{pid}/stat") as f:  # plain open: the watchdog reads every process's once a second
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (None if it is gone)."""
    fields = _stat(pid)
    return fields[19] if fields else None


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, all threads) of process ``pid`` so far, in seconds (None if it is gone)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") if fields else None


def runqueue_seconds(pid: int) -> float | None:
    """Time the main thread of ``pid`` has spent runnable but waiting for a core (/proc/PID/schedstat), in
    seconds (None if it is gone or the kernel keeps no scheduler statistics)."""
    try:
        with open(f"{PROC}/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def alive(pid: int, started: str | None = None) -> bool:
    """Whether ``pid`` runs (a zombie is dead, only not yet reaped), and started at ``started`` if given."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z" and (started is None or fields[19] == started)


def owner_alive(tag: str) -> bool:
    """Whether the process that created ``tag`` still runs (a malformed tag counts as alive: never reaped)."""
    pid, started, _ = tag.split(":", 2)
    return not pid.isdigit() or alive(int(pid), started)


def tags_of(pid: int) -> list[str]:
    """The owner tags in a process's environment ([] if unreadable: gone, or another user's)."""
    try:
        env = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return []
    prefix = f"{TAG_VAR}=".encode()
    for item in env.split(b"\0"):
        if item.startswith(prefix):
            return [t for t in item[len(prefix):].decode(errors="replace").split(",") if t.count(":") >= 2]
    return []


def _others() -> list[int]:
    me = os.getpid()
    return [int(e.name) for e in PROC.iterdir() if e.name.isdigit() and int(e.name) != me]


def tagged(tag: str) -> list[int]:
    """Live processes (other than this one) that carry ``tag``."""
    return [pid for pid in _others() if tag in tags_of(pid) and alive(pid)]


def _kill(pids: list[int]) -> list[int]:
    killed = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except (ProcessLookupError, PermissionError):
            pass
    return killed


def reap_orphans() -> list[int]:
    """SIGKILL every process carrying a tag whose owner is gone, with its descendants; return their pids."""
    if not PROC.is_dir():
        return []
    orphans = {pid for pid in _others()
               if (tags := tags_of(pid)) and not all(owner_alive(t) for t in tags) and alive(pid)}
    return _kill(sorted((orphans | descendants(orphans, _table())) - _watchdogs() - {os.getpid()}))


def own_tag() -> str | None:
    """This process's tag if it already guards its children."""
    mine = f"{os.getpid()}:{start_time(os.getpid())}:"
    return next((t for t in os.environ.get(TAG_VAR, "").split(",") if t.startswith(mine)), None)


def guard_children() -> str | None:
    """Make sure what this process starts from now on dies with it (idempotent); return its tag.

    Reaps earlier orphans first, then tags this process's environment and starts its watchdog. None where
    /proc is unavailable.
    """
    if not (PROC / "self" / "environ").exists():
        return None
    if (tag := own_tag()) is not None:
        return tag
    reap_orphans()
    tag = f"{os.getpid()}:{start_time(os.getpid())}:{uuid.uuid4().hex[:12]}"
    from llm_emu.pythonpath import child_pythonpath

    watchdog_env = {k: v for k, v in os.environ.items() if k != TAG_VAR}
    watchdog_env["PYTHONPATH"] = child_pythonpath()
    launcher = subprocess.Popen(
        [sys.executable, "-m", "llm_emu.lifetime", tag], env=watchdog_env, start_new_session=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    launcher.wait()  # the launcher exits at once; its forked child does the watching
    os.environ[TAG_VAR] = ",".join(filter(None, [os.environ.get(TAG_VAR, ""), tag]))
    return tag


def _table() -> dict[int, tuple[int, str]]:
    """Every live process: pid -> (parent pid, start time)."""
    table = {}
    for name in os.listdir(PROC):
        if name.isdigit() and (fields := _stat(int(name))) and fields[0] != "Z":
            table[int(name)] = (int(fields[1]), fields[19])
    return table


def descendants(roots: set[int], table: dict[int, tuple[int, str]]) -> set[int]:
    """Children, grandchildren, ... of ``roots`` in a process table (roots excluded)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found and child not in roots:
                found.add(child)
                todo.append(child)
    return found


def _watchdogs() -> set[int]:
    """Pids of llm-emu watchdogs (never killed by another watchdog: each finishes its own job)."""
    out = set()
    for pid in _others():
        try:
            if b"llm_emu.lifetime" in (PROC / str(pid) / "cmdline").read_bytes():
                out.add(pid)
        except OSError:
            pass
    return out


def _wait_exit(pid: int, timeout_s: float) -> None:
    """Sleep up to ``timeout_s``, waking at once if ``pid`` exits (pidfd where available)."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # Python < 3.9, Linux < 5.3, or already gone
        time.sleep(timeout_s)
        return
    try:
        select.select([fd], [], [], timeout_s)
    finally:
        os.close(fd)


def watch(tag: str, poll_s: float = 1.0, rounds: int = 5) -> list[int]:
    """Record the descendants of ``tag``'s owner while it runs; once it is gone, SIGKILL them; return the pids.

    Killed each round: recorded processes still running (same start time, so never a reused pid), processes
    carrying ``tag``, and their descendants. A few rounds, because a dying tree can start a last child. Missed:
    an untagged process that left the tree within ``poll_s`` before the owner died.
    """
    owner = int(tag.split(":", 1)[0])
    known: dict[int, str] = {}
    while owner_alive(tag):
        table = _table()
        known.update((pid, table[pid][1]) for pid in descendants({owner}, table))
        _wait_exit(owner, poll_s)
    killed: list[int] = []
    for _ in range(rounds):
        table = _table()
        roots = {pid for pid, started in known.items() if table.get(pid, (0, ""))[1] == started} | set(tagged(tag))
        targets = (roots | descendants(roots, table)) - _watchdogs() - {os.getpid()}
        known.update((pid, table[pid][1]) for pid in targets if pid in table)
        pids = _kill(sorted(targets))
        if not pids:
            break
        killed += pids
        time.sleep(0.2)
    return killed


def die_with_parent() -> None:
    """Have the kernel SIGKILL this multiprocessing child when its parent process dies (Linux; else no-op).

    For vLLM's EngineCore: vLLM has no such guard of its own, so a SIGKILLed API server would leave it running.
    The signal is tied to the thread that started this process; vLLM starts the EngineCore from the API
    server's main thread, which lives as long as the server.
    """
    parent = multiprocessing.parent_process()
    if parent is None or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return  # not permitted here: the owner watchdogs still apply
    if os.getppid() != parent.pid:  # the parent died before the guard was set
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    if os.fork() == 0:  # the watcher: not a child of the owner, so Ray's cleanup of the owner does not reach it
        watch(sys.argv[1])
    os._exit(0)
