"""Profile packs: round trip and one clear error per problem."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from llm_emu.errors import ProfileError
from llm_emu.profile.pack import load_pack, save_pack
from llm_emu.profile.resolve import resolve_profile
from tests.factories import LLAMA_8B, make_pack, synthetic_steps


def test_round_trip(tmp_path: Path) -> None:
    pack = make_pack()
    save_pack(pack, tmp_path / "p")
    back = load_pack(tmp_path / "p")
    assert back.meta == pack.meta
    pd.testing.assert_frame_equal(back.steps, pack.steps.reset_index(drop=True), check_dtype=False)


def _saved(tmp_path: Path) -> Path:
    return save_pack(make_pack(), tmp_path / "p")


def _edit_meta(path: Path, fn) -> None:  # type: ignore[no-untyped-def]
    meta = json.loads((path / "profile.json").read_text())
    fn(meta)
    (path / "profile.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: (p / "profile.json").unlink(), "profile.json: file is missing"),
        (lambda p: (p / "steps.parquet").unlink(), "steps.parquet: file is missing"),
        (lambda p: (p / "profile.json").write_text("{ not json"), "invalid JSON at line 1"),
        (lambda p: _edit_meta(p, lambda m: m.update(colour="red")), r"unknown field\(s\) \['colour'\]"),
        (lambda p: _edit_meta(p, lambda m: m["engine"].update(blocksize=16)),
         r"engine: unknown field\(s\) \['blocksize'\]"),
        (lambda p: _edit_meta(p, lambda m: m.update(schema_version=99)), "schema_version 99 is not supported"),
        (lambda p: _edit_meta(p, lambda m: m.pop("device")), "required field 'device' is missing"),
        (lambda p: _edit_meta(p, lambda m: m["provenance"].update(kind="guessed")),
         "must be 'measured' or 'estimated'"),
        (lambda p: synthetic_steps().head(0).to_parquet(p / "steps.parquet"), "steps table is empty"),
        (lambda p: synthetic_steps().drop(columns=["num_decode_reqs"]).to_parquet(p / "steps.parquet"),
         r"missing column\(s\) \['num_decode_reqs'\]"),
        (lambda p: (p / "steps.parquet").write_text("garbage"), "not a readable parquet file"),
    ],
)
def test_each_problem_is_one_clear_error(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    path = _saved(tmp_path)
    mutate(path)
    with pytest.raises(ProfileError, match=message) as info:
        load_pack(path)
    assert "\n" not in str(info.value)


def test_missing_directory_names_the_alternatives(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="aic:h100_sxm"):
        load_pack(tmp_path / "nope")


def test_named_profiles() -> None:
    aic = resolve_profile("aic:h100_sxm", LLAMA_8B)
    assert aic.meta.provenance.kind == "estimated" and aic.meta.oracle == "aic"
    assert aic.label == "NVIDIA H100 80GB HBM3 (estimated)"
    formula = resolve_profile("formula:base_us=1000,decode_req_us=5", LLAMA_8B)
    assert formula.meta.oracle_params == {"base_us": 1000.0, "decode_req_us": 5.0}
    with pytest.raises(ProfileError, match="unknown aic system 'h900'"):
        resolve_profile("aic:h900", LLAMA_8B)
    with pytest.raises(ProfileError, match="not key=value"):
        resolve_profile("formula:fast", LLAMA_8B)


def test_features_as_tuple_follows_field_order() -> None:
    from dataclasses import astuple

    from llm_emu.profile.features import StepFeatures

    f = StepFeatures(1, 2, 3, 4, 5)
    assert f.as_tuple() == astuple(f)
