"""Pruning rules: which engine configs not to run, each with a reason recorded for the user.

Built-in rules mirror checks vLLM itself makes at startup (a trial vLLM would refuse wastes a server start
and its retries); user rules come from the spec's ``constraints`` list. Rules are parsed, never ``eval``-ed.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from llm_emu.errors import SpecError

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne, "<": operator.lt,
    ">": operator.gt,
}
_RULE = re.compile(r"^\s*([A-Za-z_][\w-]*|[-+]?[\d.]+(?:e[-+]?\d+)?)\s*(<=|>=|==|!=|<|>)\s*"
                   r"([A-Za-z_][\w-]*|[-+]?[\d.]+(?:e[-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Rule:
    """A parsed comparison ``left op right``; each side an engine arg name or a number."""

    left: str | float
    op: str
    right: str | float

    def holds(self, config: Mapping[str, Any]) -> bool | None:
        """True/False, or None when a named arg is absent from the config (rule does not apply)."""
        a, b = _term(self.left, config), _term(self.right, config)
        if a is None or b is None:
            return None
        return _compare(self.op, a, b, self.left, self.right)


def _compare(op: str, a: Any, b: Any, left: Any, right: Any) -> bool:
    """``a op b``; a value of the wrong type (e.g. the string "abc" for a number) is a one-line SpecError."""
    try:
        return bool(_OPS[op](a, b))
    except TypeError:
        raise SpecError(f"cannot compare {left} ({a!r}) {op} {right} ({b!r}): a value has the wrong type; "
                        "fix it in the spec") from None


def _term(term: str | float, config: Mapping[str, Any]) -> Any:
    return config.get(term) if isinstance(term, str) else term


def _side(text: str) -> str | float:
    if re.match(r"^[A-Za-z_]", text):
        return text.replace("-", "_")
    try:
        return float(text)
    except ValueError:
        raise SpecError(f"{text!r} is neither an engine arg name nor a number") from None


def parse_rule(text: str) -> Rule:
    """Parse ``"max_num_batched_tokens >= max_num_seqs"``; SpecError naming the expected form otherwise."""
    m = _RULE.match(text)
    if not m:
        raise SpecError(f"cannot parse rule {text!r}; expected '<arg or number> <op> <arg or number>' "
                        f"with op one of {', '.join(_OPS)}")
    return Rule(_side(m.group(1)), m.group(2), _side(m.group(3)))


def rule_names(rule: Rule) -> list[str]:
    """The engine arg names a rule compares."""
    return [t for t in (rule.left, rule.right) if isinstance(t, str)]


def builtin_reason(config: Mapping[str, Any], model_max_len: int | None) -> str | None:
    """Why vLLM would reject ``config`` at startup, or None.

    Args:
        config: effective engine args (base engine_args + grid point), underscore names.
        model_max_len: the model's context length, used when max_model_len is not set.
    """
    mnbt = config.get("max_num_batched_tokens")
    max_len = config.get("max_model_len") or model_max_len
    if (config.get("enable_chunked_prefill") is False and mnbt is not None and max_len
            and _compare("<", mnbt, max_len, "max_num_batched_tokens", "max_model_len")):
        return (f"max_num_batched_tokens ({mnbt}) is smaller than max_model_len ({max_len}) with chunked "
                f"prefill disabled: vLLM rejects this config (a whole prompt must fit one step); enable "
                f"chunked prefill or raise max_num_batched_tokens")
    seqs = config.get("max_num_seqs")
    if mnbt is not None and seqs is not None and _compare("<", mnbt, seqs, "max_num_batched_tokens", "max_num_seqs"):
        return (f"max_num_batched_tokens ({mnbt}) is smaller than max_num_seqs ({seqs}): vLLM rejects this "
                f"config; raise max_num_batched_tokens or lower max_num_seqs")
    return None


@dataclass(frozen=True)
class UserConstraint:
    """A spec constraint, parsed."""

    rule: Rule
    text: str
    when: tuple[tuple[str, Any], ...] = ()
    """Applies only to configs with all of these values."""
    unless: tuple[tuple[str, Any], ...] = ()
    """Does not apply to configs with all of these values."""
    reason: str | None = None

    def violation(self, config: Mapping[str, Any]) -> str | None:
        """The recorded reason if ``config`` breaks this constraint, else None."""
        if any(config.get(k) != v for k, v in self.when):
            return None
        if self.unless and all(config.get(k) == v for k, v in self.unless):
            return None
        if self.rule.holds(config) is False:
            return self.reason or f"violates constraint {self.text!r}"
        return None


def user_constraints(specs: Iterable[Any]) -> tuple[UserConstraint, ...]:
    """Parse the spec's ``constraints`` entries (already checked at load; when/unless are mappings or None)."""
    return tuple(
        UserConstraint(parse_rule(c.rule), c.rule, tuple((c.when or {}).items()), tuple((c.unless or {}).items()),
                       c.reason)
        for c in specs
    )


def prune_reason(config: Mapping[str, Any], model_max_len: int | None,
                 constraints: tuple[UserConstraint, ...] = ()) -> str | None:
    """First reason to skip ``config`` (built-in rules first), or None to run it."""
    reason = builtin_reason(config, model_max_len)
    if reason:
        return reason
    for c in constraints:
        reason = c.violation(config)
        if reason:
            return reason
    return None
