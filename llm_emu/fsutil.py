"""Atomic file writes: a reader (or a run resumed after ``kill -9``) sees the old file or the new one, never half.

Every writer of results, packs and caches goes through :func:`atomic_open`: the data goes to a temp file in
the target's directory (same file system, so the rename is atomic), is flushed and fsynced, then
``os.replace``-d over the target; on any error the temp file is removed and the target is left as it was.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

FILE_MODE = 0o644
"""Permissions of written files (mkstemp's 0o600 would hide results from other users of a shared box)."""


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: Literal["w", "wb"] = "w") -> Iterator[IO[Any]]:
    """Open a temp file beside ``path`` for writing; on a clean exit it replaces ``path``.

    Args:
        path: the target file; missing parent directories are created.
        mode: "w" (text, UTF-8) or "wb" (binary).

    Yields:
        The open temp file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, encoding="utf-8" if mode == "w" else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as fh:
        fh.write(text)


def atomic_write_json(path: str | os.PathLike[str], data: Any, *, sort_keys: bool = False) -> None:
    """Write ``data`` as indented JSON atomically (values JSON cannot hold are written with ``str``)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=sort_keys, default=str) + "\n")


def atomic_write_parquet(path: str | os.PathLike[str], df: pd.DataFrame) -> None:
    """Write ``df`` as parquet (no index) atomically."""
    with atomic_open(path, "wb") as fh:
        df.to_parquet(fh, index=False)
