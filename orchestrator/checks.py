"""Everything about a spec that can be checked before a server starts, for grid and search alike.

`llm-emu sweep` (and ``--dry-run``) calls ``check_spec`` after loading: engine-arg names and values as vLLM's
own server parser reads them, the model's config, the profile pack and its oracle, the host model of virtual
time. Each problem is one line with ``file:line`` (a SpecError, exit 2); nothing has started or been written.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any

from llm_emu.errors import EmuError, SpecError
from llm_emu.flags import render_value
from llm_emu.yamlspec import dotted
from orchestrator.spec import SweepSpec

Where = tuple[str | int, ...]


def check_spec(spec: SweepSpec) -> None:
    """Run every pre-flight check; the first problem raises SpecError (one line, ``file:line``)."""
    config = check_model(spec)
    if spec.kind == "emulated":
        check_profile(spec, config)
        check_unsupported(spec)
    if spec.clock == "virtual":
        check_host_model(spec)
    check_engine_args(spec)


def _error(spec: SweepSpec, path: Where, exc: BaseException) -> SpecError:
    lines = str(exc).strip().splitlines()
    text = str(exc) if isinstance(exc, EmuError) else f"{type(exc).__name__}: {lines[-1] if lines else ''}"
    return SpecError(f"{spec.where(*path)}: {dotted(path)}: {text}")


def check_model(spec: SweepSpec) -> dict[str, Any]:
    """The model's config.json, found offline (shipped model, model dir or the local HF cache)."""
    from llm_emu.models import require_model_config

    try:
        return require_model_config(spec.model)
    except EmuError as exc:
        raise _error(spec, ("model",), exc) from None


def check_profile(spec: SweepSpec, model_config: dict[str, Any]) -> None:
    """The profile loads, and its oracle builds and answers a prefill step and a decode step for this model."""
    from llm_emu.oracle import create_oracle
    from llm_emu.profile.features import StepFeatures
    from llm_emu.profile.resolve import resolve_profile

    assert spec.profile is not None  # checked at load for emulated specs
    try:
        oracle = create_oracle(resolve_profile(spec.profile, model_config))
        for step in (StepFeatures(num_prefill_tokens=128, num_prefill_reqs=1),
                     StepFeatures(num_decode_reqs=8, decode_context_tokens=8 * 512)):
            oracle.expected(step)
    except Exception as exc:  # any failure here would fail every trial and its retries
        raise _error(spec, ("profile",), exc) from None


def check_host_model(spec: SweepSpec) -> None:
    """The virtual-time host model resolves ("default", "none", or a readable JSON file)."""
    from llm_emu.virtual.host import resolve_host

    try:
        resolve_host(spec.host_model)
    except EmuError as exc:
        raise _error(spec, ("host_model",), exc) from None


def _values(spec: SweepSpec) -> Iterator[tuple[Where, str, Any]]:
    """Every engine-arg value the spec can produce: (path in the spec, arg name, value)."""
    for name, value in spec.engine_args.items():
        yield ("engine_args", name), name, value
    for name, values in spec.grid.items():
        for i, value in enumerate(values):
            yield ("grid", name, i), name, value
    if spec.search is not None:
        for name, p in spec.search.space.items():
            for value in p.values_to_check():
                yield ("search", "space", name), name, value


def check_unsupported(spec: SweepSpec) -> None:
    """Flags the emulator refuses (e.g. tensor parallelism it cannot emulate yet)."""
    from llm_emu.engine import compat

    for path, name, value in _values(spec):
        try:
            compat.check_flags(render_value(name, value))
        except EmuError as exc:
            raise _error(spec, path, exc) from None


def check_engine_args(spec: SweepSpec) -> None:
    """Names against vLLM's EngineArgs, values through vLLM's `vllm serve` parser (skipped without vLLM)."""
    checker = _vllm_checker()
    if checker is None:
        return
    names, parse = checker
    for path, name, value in _values(spec):
        if name not in names:
            close = difflib.get_close_matches(name, sorted(names), n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(close)}?" if close else "; see `vllm serve --help`"
            key = path[: path.index(name) + 1]
            raise SpecError(f"{spec.where(*key)}: {dotted(key)}: not a vLLM engine arg{hint}")
        try:
            flags = render_value(name, value)
        except EmuError as exc:
            raise _error(spec, path, exc) from None
        problem = parse(flags)
        if problem is not None:
            raise SpecError(f"{spec.where(*path)}: {dotted(path)}: vLLM refuses {' '.join(flags)!r} ({problem}); "
                            "fix the value")
    for i, c in enumerate(spec.constraints):
        for name in _constraint_names(c):
            if name not in names:
                raise SpecError(f"{spec.where('constraints', i)}: constraints[{i}]: {name!r} is not a vLLM engine arg")


def _constraint_names(c: Any) -> list[str]:
    from orchestrator.constraints import parse_rule, rule_names

    return [*rule_names(parse_rule(c.rule)), *(c.when or {}), *(c.unless or {})]


def _vllm_checker() -> tuple[frozenset[str], Callable[[list[str]], str | None]] | None:
    try:
        from llm_emu.engine import compat

        return compat.engine_arg_names(), compat.serve_flags_checker()
    except ImportError:  # no vLLM on the controller machine: the servers will check
        return None
