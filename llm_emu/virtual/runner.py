"""Runner process of virtual time.

vLLM picks its platform once per process, so virtual runs happen in a process started with the emulator's
platform gate set. Two ways to drive it:

* ``python -m llm_emu.virtual.runner JOB.json`` (``run_virtual_cells``): the job names one server
  configuration and its benchmark runs; each run's result is written to ``<out>/cell-<i>.json`` as soon as it
  is known (atomically), so a crash loses nothing already measured. A failure goes to ``<out>/error.txt``.
* ``python -m llm_emu.virtual.runner --serve REPLY_FD`` (the virtual measure loop): one JSON command per line
  on stdin (``open`` a spec, ``run`` a cell into a file, ``reset`` the prefix cache, ``close``); one JSON reply
  per command on the file descriptor ``REPLY_FD`` (vLLM's logs keep stdout/stderr).
"""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import fields
from pathlib import Path
from typing import Any

from llm_emu.benchclient import Workload
from llm_emu.errors import EmuError
from llm_emu.fsutil import atomic_write_text
from llm_emu.virtual.host import HostModel

ERROR_FILE = "error.txt"


def cell_file(out: Path, i: int) -> Path:
    """Where the result of run ``i`` of a job goes."""
    return out / f"cell-{i:03d}.json"


def _workload(data: dict[str, Any]) -> Workload:
    known = {f.name for f in fields(Workload)}
    return Workload(**{k: v for k, v in data.items() if k in known})


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data))


def build_server(spec: dict[str, Any]) -> Any:
    """A VirtualServer from a job's JSON spec."""
    from llm_emu.virtual.engine import VirtualServer, VirtualSpec

    spec_data = dict(spec)
    spec_data["host"] = HostModel.from_dict(spec_data.get("host") or {})
    spec_data["vllm_args"] = tuple(spec_data.get("vllm_args") or ())
    return VirtualServer(VirtualSpec(**spec_data))


def run_cell(server: Any, cell: dict[str, Any]) -> dict[str, Any]:
    """One benchmark run of a JSON cell; the result without the generated texts."""
    result: dict[str, Any] = server.run(_workload(cell["workload"]), goodput=cell.get("goodput"),
                                        client_args_extra=cell.get("client_args") or (),
                                        served_model=cell.get("served_model"))
    result.pop("generated_texts", None)
    return result


def run_job(job: dict[str, Any]) -> None:
    """Build the server once, then answer every cell of the job in order."""
    out = Path(job["out"])
    server = build_server(job["spec"])
    for i, cell in enumerate(job["cells"]):
        if i and cell.get("reset_prefix_cache", True):
            server.reset_prefix_cache()
        _write_json(cell_file(out, i), run_cell(server, cell))


def one_line(exc: BaseException) -> str:
    """An exception as one line (EmuError messages already are)."""
    if isinstance(exc, EmuError):
        return str(exc)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[-1] if text else ''}"


def serve(reply_fd: int) -> int:
    """Answer commands from stdin until ``close`` or end of input."""
    import time

    reply = open(reply_fd, "w", buffering=1)
    server = None
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd.get("op")
        try:
            if op == "open":
                started = time.perf_counter()
                server = build_server(cmd["spec"])
                answer: dict[str, Any] = {"ok": True, "startup_s": time.perf_counter() - started}
            elif op == "run":
                _write_json(Path(cmd["out"]), run_cell(server, cmd["cell"]))
                answer = {"ok": True}
            elif op == "reset":
                server.reset_prefix_cache()  # type: ignore[union-attr]
                answer = {"ok": True}
            elif op == "close":
                reply.write(json.dumps({"ok": True}) + "\n")
                return 0
            else:
                answer = {"ok": False, "error": f"unknown command {op!r}"}
        except Exception as exc:
            if not isinstance(exc, EmuError):
                traceback.print_exc()
            answer = {"ok": False, "error": one_line(exc)}
        reply.write(json.dumps(answer) + "\n")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        return serve(int(argv[1]))
    job = json.loads(Path(argv[0]).read_text())
    out = Path(job["out"])
    try:
        run_job(job)
    except EmuError as exc:
        (out / ERROR_FILE).write_text(f"{exc}\n")
        return 2
    except Exception as exc:
        traceback.print_exc()
        (out / ERROR_FILE).write_text(one_line(exc) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
