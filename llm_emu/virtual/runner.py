"""Runner process of virtual time: ``python -m llm_emu.virtual.runner JOB.json``.

vLLM picks its platform once per process, so virtual runs happen in a process started with the emulator's
platform gate set (``run_virtual_cells`` starts it). The job names one server configuration and its benchmark
runs; each run's result is written to ``<out>/cell-<i>.json`` as soon as it is known (atomically), so a crash
loses nothing already measured. A failure is written to ``<out>/error.txt`` as one line.
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


def run_job(job: dict[str, Any]) -> None:
    """Build the server once, then answer every cell of the job in order."""
    from llm_emu.virtual.engine import VirtualServer, VirtualSpec

    out = Path(job["out"])
    spec_data = dict(job["spec"])
    spec_data["host"] = HostModel.from_dict(spec_data.get("host") or {})
    spec_data["vllm_args"] = tuple(spec_data.get("vllm_args") or ())
    server = VirtualServer(VirtualSpec(**spec_data))
    for i, cell in enumerate(job["cells"]):
        if i and cell.get("reset_prefix_cache", True):
            server.reset_prefix_cache()
        result = server.run(_workload(cell["workload"]), goodput=cell.get("goodput"),
                            client_args_extra=cell.get("client_args") or (), served_model=cell.get("served_model"))
        result.pop("generated_texts", None)
        _write_json(cell_file(out, i), result)


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text())
    out = Path(job["out"])
    try:
        run_job(job)
    except EmuError as exc:
        (out / ERROR_FILE).write_text(f"{exc}\n")
        return 2
    except Exception as exc:
        traceback.print_exc()
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
        (out / ERROR_FILE).write_text(f"{type(exc).__name__}: {last}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
