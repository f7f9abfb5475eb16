"""Stop a trial's server when its Ray actor is killed.

A server runs in its own process group (so that ``ServerProcess.stop`` can end all of it), which also means
it survives its parent: when Ray kills a trial actor (timeout, ``ray.kill``, a cancelled sweep), nothing runs
the actor's cleanup and vLLM's EngineCore would live on, holding ~1 GB and CPU time that the next attempt
needs. The actor therefore tags its environment with a unique ``LLM_EMU_REAPER_TAG`` (inherited by every
process it starts, grandchildren included) and starts this small watchdog
(``python -m orchestrator.reaper ACTOR_PID TAG``), which waits for the actor to exit and then SIGKILLs every
process still carrying the tag. Matching by tag rather than by parentage works after the orphans were
reparented and has no window in which a just-started server goes unnoticed. The watchdog forks away from
the actor at once: Ray kills a dead worker's direct children, and the watchdog must outlive it.
Linux only (reads /proc); elsewhere it is not started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

PROC = Path("/proc")


TAG_VAR = "LLM_EMU_REAPER_TAG"
"""Environment variable marking the processes of one trial actor (a tag, not a setting)."""


def _alive(pid: int) -> bool:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return text[text.rindex(")") + 2:].split()[0] != "Z"  # a zombie is dead, only not yet reaped


def tagged(tag: str) -> list[int]:
    """Live processes (other than this one) whose environment carries ``tag``."""
    needle = f"{TAG_VAR}={tag}".encode()
    out = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0") and _alive(int(entry.name)):
            out.append(int(entry.name))
    return out


def watch(parent: int, tag: str, poll_s: float = 0.5) -> list[int]:
    """Wait for ``parent`` to exit, then SIGKILL every process tagged ``tag``; return their pids."""
    while _alive(parent):
        time.sleep(poll_s)
    killed = []
    for pid in tagged(tag):
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except (ProcessLookupError, PermissionError):
            pass
    return killed


def start_reaper() -> subprocess.Popen[bytes] | None:
    """Tag this process's environment and start its watchdog; None where /proc is unavailable."""
    if not (PROC / "self" / "environ").exists():
        return None
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    os.environ[TAG_VAR] = tag  # inherited by the servers this actor starts from now on
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.reaper", str(os.getpid()), tag],
        start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    proc.wait()  # the launcher exits at once; its forked child does the watching
    return proc


if __name__ == "__main__":
    if os.fork() == 0:  # the watcher: not a child of the actor, so Ray's cleanup does not reach it
        watch(int(sys.argv[1]), sys.argv[2])
    os._exit(0)
