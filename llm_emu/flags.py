"""Engine args (``{"max_num_seqs": 64, ...}``) as `vllm serve` flags, the way vLLM's own parser reads them.

vLLM builds its CLI from its config dataclasses: booleans are ``BooleanOptionalAction`` (``--x`` /
``--no-x``), list fields take ``nargs="+"`` (``--x a b``), dict fields take one JSON argument.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from llm_emu.errors import EmuError


def flag_name(key: str) -> str:
    """``max_num_seqs`` / ``max-num-seqs`` / ``--max-num-seqs`` -> ``max-num-seqs``."""
    return key.lstrip("-").replace("_", "-")


def flag_given(flags: Iterable[str], key: str) -> bool:
    """Whether ``flags`` set ``key`` already (``--x``, ``--x=v``, ``--no-x``, any ``_``/``-`` spelling)."""
    name = flag_name(key)
    return any(a.startswith("--") and flag_name(a.split("=", 1)[0]) in (name, f"no-{name}") for a in flags)


def render_value(key: str, value: Any) -> list[str]:
    """One engine arg as flags; ``[]`` for None (vLLM's default applies).

    Raises:
        EmuError: for an empty list, which `vllm serve` cannot take (``nargs="+"``).
    """
    name = flag_name(key)
    if value is None:
        return []
    if isinstance(value, bool):
        return [f"--{name}" if value else f"--no-{name}"]
    if isinstance(value, Mapping):
        return [f"--{name}", json.dumps(value, sort_keys=True)]
    if isinstance(value, (list, tuple)):
        if not value:
            raise EmuError(f"engine arg {key!r} is an empty list, which `vllm serve --{name}` cannot take; "
                           "remove it to get vLLM's default")
        return [f"--{name}", *(json.dumps(v) if isinstance(v, Mapping) else str(v) for v in value)]
    return [f"--{name}", str(value)]


def render_flags(engine_args: Mapping[str, Any], *, skip_given: Sequence[str] = ()) -> list[str]:
    """``engine_args`` as `vllm serve` flags, in the mapping's order.

    Args:
        engine_args: vLLM engine arg names (underscores or dashes) to values. None -> omitted;
            True/False -> ``--x``/``--no-x``; list/tuple -> ``--x a b``; dict -> ``--x '{"json": ...}'``;
            anything else -> ``--x str(value)``.
        skip_given: flags the user passed; args they already set are left out (the user wins).
    """
    out: list[str] = []
    for key, value in engine_args.items():
        if not flag_given(skip_given, key):
            out += render_value(key, value)
    return out
