"""Stop a trial's server when its Ray actor is killed.

A server runs in its own process group (so that ``ServerProcess.stop`` can end all of it), which also means
it survives its parent: when Ray kills a trial actor (timeout, ``ray.kill``, a cancelled sweep), nothing runs
the actor's cleanup and vLLM's EngineCore would live on, holding ~1 GB and CPU time that the next attempt
needs. The actor therefore starts this small watchdog (``python -m orchestrator.reaper ACTOR_PID``) in a
session of its own: it remembers the process groups the actor leads children of, and SIGKILLs them once
the actor is gone. The watchdog forks away from the actor at once: Ray kills a dead worker's direct
children, and the watchdog must outlive it. Linux only (reads /proc); elsewhere it is not started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PROC = Path("/proc")


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, pgid) of ``pid`` or None if it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name may contain spaces and parentheses
    return int(fields[1]), int(fields[2])


def _scan() -> dict[int, tuple[int, int]]:
    out = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            out[int(entry.name)] = st
    return out


def watch(parent: int, poll_s: float = 0.5) -> list[int]:
    """Track groups led by children of ``parent`` until it exits; then SIGKILL them. Returns those killed."""
    groups: set[int] = set()
    while _stat(parent) is not None:
        procs = _scan()
        alive_groups = {pgid for _, pgid in procs.values()}
        groups = {g for g in groups if g in alive_groups}  # ended normally: forget (no pgid reuse risk)
        groups |= {pid for pid, (ppid, pgid) in procs.items() if ppid == parent and pgid == pid}
        time.sleep(poll_s)
    killed = []
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
            killed.append(group)
        except (ProcessLookupError, PermissionError):
            pass
    return killed


def start_reaper(parent: int | None = None) -> subprocess.Popen[bytes] | None:
    """Start the watchdog for ``parent`` (default: this process); None where /proc is unavailable."""
    if not (PROC / "self" / "stat").exists():
        return None
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.reaper", str(parent or os.getpid())],
        start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    proc.wait()  # the launcher exits at once; its forked child does the watching
    return proc


if __name__ == "__main__":
    if os.fork() == 0:  # the watcher: not a child of the actor, so Ray's cleanup does not reach it
        watch(int(sys.argv[1]))
    os._exit(0)
