"""Build frozen dataclasses from parsed YAML, checking types and rejecting unknown keys.

Supports the handful of annotations the specs use: bool, int, float (``inf`` accepted), str, ``X | Y | None``,
``Literal[...]``, ``tuple[X, ...]``, ``dict[str, X]`` (``X`` may be ``Any``), ``Any`` and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from llm_emu.errors import SpecError
from llm_emu.yamlspec.marks import Located, Path_, dotted

T = TypeVar("T")


def fail(doc: Located, path: Path_, message: str) -> SpecError:
    """A SpecError prefixed with ``file:line: dotted.path:``."""
    return SpecError(f"{doc.where(path)}: {dotted(path)}: {message}")


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin is tuple:
        return f"a list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def coerce(doc: Located, path: Path_, value: Any, tp: Any) -> Any:
    """Check ``value`` against annotation ``tp``; lists become tuples, nested mappings dataclasses."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in get_args(tp):
            return None
        options = [a for a in get_args(tp) if a is not type(None)]
        if len(options) == 1:  # keep the nested error (e.g. an unknown key inside an optional section)
            return coerce(doc, path, value, options[0])
        for arg in options:
            try:
                return coerce(doc, path, value, arg)
            except SpecError:
                continue
        raise fail(doc, path, f"expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise fail(doc, path, f"expected one of {', '.join(repr(a) for a in get_args(tp))}; got {value!r}")
    if origin is tuple:
        if not isinstance(value, list):
            raise fail(doc, path, f"expected {_type_name(tp)}, got {value!r}")
        return tuple(coerce(doc, (*path, i), v, get_args(tp)[0]) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise fail(doc, path, f"expected a mapping, got {value!r}")
        item = get_args(tp)[1] if get_args(tp) else Any
        return {k: coerce(doc, (*path, k), v, item) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return build(doc, path, value, tp)  # type: ignore[arg-type]
    return _scalar(doc, path, value, tp)


def _scalar(doc: Located, path: Path_, value: Any, tp: Any) -> Any:
    if tp is bool and isinstance(value, bool):
        return value
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and value.strip().lower() in ("inf", "infinity", ".inf"):
            return math.inf
    if tp is str and isinstance(value, str):
        return value
    raise fail(doc, path, f"expected {_type_name(tp)}, got {value!r}")


def build(doc: Located, path: Path_, data: Any, cls: type[T]) -> T:
    """Construct dataclass ``cls`` from mapping ``data``: unknown keys rejected (valid ones listed)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise fail(doc, path, f"expected a mapping with keys {_keys(cls)}, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            raise fail(doc, (*path, key), f"unknown key {key!r}; valid keys: {_keys(cls)}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = coerce(doc, (*path, name), data[name], hints[name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise fail(doc, path, f"missing required key {name!r}")
    return cls(**kwargs)


def _keys(cls: type) -> str:
    return ", ".join(f.name for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_"))
