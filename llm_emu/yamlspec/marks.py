"""Load YAML into plain Python values while remembering where (file:line) each value came from.

Validation errors then quote the line of the offending key instead of just its dotted path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llm_emu.errors import SpecError

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Located:
    """A parsed YAML document plus the source position of every mapping key and list item."""

    data: Any
    """The document as plain dicts, lists and scalars (yaml.safe_load semantics)."""
    source: str
    """File name used in messages."""
    marks: dict[Path_, int] = field(default_factory=dict, compare=False, repr=False)
    """(key, key, index, ...) -> 1-based line number."""

    def where(self, path: Path_) -> str:
        """``file:line`` of the deepest known ancestor of ``path`` (``file`` alone if none)."""
        for n in range(len(path), -1, -1):
            line = self.marks.get(tuple(path[:n]))
            if line is not None:
                return f"{self.source}:{line}"
        return self.source


def dotted(path: Path_) -> str:
    """``("grid", "max_num_seqs", 2)`` -> ``grid.max_num_seqs[2]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _walk(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, marks: dict[Path_, int], src: str) -> Any:
    marks[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise SpecError(f"{src}:{key_node.start_mark.line + 1}: keys must be strings, got {key!r}")
            if key in out:
                raise SpecError(f"{src}:{key_node.start_mark.line + 1}: duplicate key {key!r}")
            out[key] = _walk(loader, value_node, (*path, key), marks, src)
            marks[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(loader, item, (*path, i), marks, src) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_located(text: str, source: str = "<string>") -> Located:
    """Parse one YAML document; syntax errors become a one-line SpecError with file:line."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        marks: dict[Path_, int] = {}
        data = {} if node is None else _walk(loader, node, (), marks, source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{source}{line}: invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return Located(data=data, source=source, marks=marks)


def load_located_file(path: str | Path) -> Located:
    """Read and parse a YAML file (missing file -> SpecError)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read spec {p}: {exc.strerror}") from None
    return load_located(text, source=str(p))
