"""The shipped reference set parses, every row has a replay plan, and the plan follows the source's workload."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from llm_emu.benchclient import build_client_argv
from llm_emu.reference import plan as plan_mod
from llm_emu.reference.compare import emulated_value, error_table, signed_errors
from llm_emu.reference.plan import ReplayOptions, plan_row
from llm_emu.reference.prompts import shared_prefix_prompts
from llm_emu.reference.rows import ReferenceError, load_reference
from tests.reference.factories import make_row


@pytest.fixture
def no_prompt_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import llm_emu.reference.prompts as prompts

    monkeypatch.setattr(prompts, "shared_prefix_file", lambda *a, **k: tmp_path / "p.jsonl")
    monkeypatch.setattr(prompts, "pool_file", lambda *a, **k: tmp_path / f"pool-{a[4]}.jsonl")
    monkeypatch.setattr(plan_mod, "PROMPTS_PER_SLOT", 4)


def test_shipped_set_is_large_and_sourced() -> None:
    rows = load_reference()
    assert len(rows) >= 12
    assert len({r.source_id for r in rows}) >= 4
    assert all(r.source and r.published for r in rows)
    assert {"h100_sxm", "h200_sxm"} <= {r.gpu for r in rows}


def test_selection_by_row_source_or_gpu() -> None:
    assert [r.row_id for r in load_reference(ids=["s2r-16-0"])] == ["s2r-16-0"]
    assert all(r.gpu == "h200_sxm" for r in load_reference(ids=["h200_sxm"]))
    with pytest.raises(ReferenceError, match="row ids are"):
        load_reference(ids=["nope"])


def test_every_row_plans(no_prompt_files: None) -> None:
    for row in load_reference():
        p = plan_row(row, ReplayOptions(max_prompts=300))
        argv = build_client_argv("http://x", "m", p.workload, tokenizer_model=p.model, result_dir=Path("/tmp"),
                                 result_filename="r.json")
        assert argv and p.workload.num_prompts <= (row.num_prompts or p.workload.num_prompts)
        if row.arrival == "all-at-once":
            assert p.workload.num_prompts == row.num_prompts  # the size of a burst is its load: never shortened
        elif row.arrival == "constant":
            e2e_s = row.published["mean_e2el_ms"] / 1000
            assert p.workload.num_prompts >= min(row.num_prompts or 0, 4 * row.request_rate * e2e_s)


def test_constant_rate_rows_use_fixed_gaps(no_prompt_files: None) -> None:
    p = plan_row(load_reference(ids=["s2r-16-1"])[0])
    assert p.workload.request_rate == 20 and math.isinf(p.workload.burstiness)
    assert p.workload.dataset == "custom" and "--disable-shuffle" in p.workload.client_args
    assert p.workload.ignore_eos and p.workload.num_prompts == 12000
    assert any("single-turn" in d for d in p.deviations)


def test_closed_loop_chat_and_fp8_rows(no_prompt_files: None) -> None:
    chat = plan_row(load_reference(ids=["gpustack-qwen3-8b-c8"])[0])
    assert chat.workload.max_concurrency == 8 and math.isinf(chat.workload.request_rate)
    assert chat.workload.client_args[-4:] == ("--backend", "openai-chat", "--endpoint", "/v1/chat/completions")
    assert not chat.workload.ignore_eos and chat.model == "qwen3-8b"
    h200 = plan_row(load_reference(ids=["aic-silicon-h200-4000x500-c96"])[0], ReplayOptions(profile="aic:{gpu}"))
    assert h200.profile == "aic:h200_sxm,quant=fp8"
    assert h200.workload.num_prompts == 4 * 96 and any("unstated" in d for d in h200.deviations)
    # aiconfigurator's benchmark template: 100 prompts cycled, a closed loop after a warm-up of 2 x concurrency
    assert h200.warmup is not None and h200.warmup.num_prompts == 2 * 96 and h200.workload.max_concurrency == 96


def test_decode_ms_per_token_is_compared_like_for_like() -> None:
    row = make_row("x", published={"mean_e2el_ms": 1900.0, "mean_ttft_ms": 25.0, "decode_ms_per_token": 7.5})
    # the source's token count: (1900 - 25) / 7.5 = 250
    assert emulated_value(row, "decode_ms_per_token", {"mean_e2el_ms": 2050.0, "mean_ttft_ms": 50.0}) == 8.0
    errors = signed_errors(row, {"mean_e2el_ms": 2050.0, "mean_ttft_ms": 50.0})
    assert errors["decode_ms_per_token"] == pytest.approx(100 * (8.0 - 7.5) / 7.5)
    assert "| x | +6.7 |" in error_table([row], {"x": errors})


def test_shared_prefix_prompts_share_prefixes_per_group() -> None:
    class Tok:
        vocab_size = 50

        def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
            return " ".join(f"t{i}" for i in ids)

    prompts = shared_prefix_prompts(Tok(), groups=3, prefix_len=5, question_len=7, num_requests=12, seed=1)
    assert len(prompts) == 12 and len(set(prompts)) == 12  # every question is new
    prefixes = [" ".join(p.split()[:5]) for p in prompts]
    assert len(set(prefixes)) == 3 and prefixes[:3] == prefixes[3:6]  # groups in turn share their system prompt
    assert all(len(p.split()) == 12 for p in prompts)
    assert prompts == shared_prefix_prompts(Tok(), 3, 5, 7, 12, seed=1)


def test_itl_growth_with_load_compares_like_for_like() -> None:
    from llm_emu.reference.compare import growth_table, itl_growth, load_series

    series = {tuple(r.row_id for r in s) for s in load_series(load_reference())}
    assert ("gpustack-qwen3-8b-c1", "gpustack-qwen3-8b-c2", "gpustack-qwen3-8b-c4", "gpustack-qwen3-8b-c8") in series
    assert ("s2r-16-0", "s2r-16-1") in series
    rows = load_reference(ids=["gpustack-qwen3-8b-c1", "gpustack-qwen3-8b-c8"])
    results = {"gpustack-qwen3-8b-c1": {"mean_itl_ms": 6.0}, "gpustack-qwen3-8b-c8": {"mean_itl_ms": 6.6}}
    pub, emu = itl_growth(rows, results)
    assert pub == pytest.approx(100 * (8.57 / 7.26 - 1)) and emu == pytest.approx(10.0)
    assert "| +18.0 | +10.0 |" in growth_table(rows, results)


def test_async_scheduling_follows_flags_then_the_version(no_prompt_files: None) -> None:
    assert make_row("a", vllm_version="0.14.0", serve_flags=()).async_scheduling
    assert not make_row("b", vllm_version="v0.13.2rc1", serve_flags=()).async_scheduling
    assert not make_row("c", vllm_version="0.19.1", serve_flags=("--no-async-scheduling",)).async_scheduling
    published = make_row("d", vllm_version="0.9.2", serve_flags=(), serve_flags_published="--async-scheduling")
    assert published.async_scheduling
    # the step host terms reach a sync-scheduling row only; the per-request term every row
    opts = ReplayOptions(profile="aic:{gpu}", host_ms=(5.0, 1.0, 0.02))
    sync = plan_row(load_reference(ids=["gpustack-qwen3-8b-c1"])[0], opts)
    fast = plan_row(load_reference(ids=["s2r-16-0"])[0], opts)
    assert sync.host_ms == (5.0, 1.0, 0.02) and fast.host_ms == (5.0, 0.0, 0.0)


def test_a_bad_vllm_version_is_one_clear_error(tmp_path: Path) -> None:
    from llm_emu.reference.rows import REFERENCE_CSV

    lines = REFERENCE_CSV.read_text().splitlines()
    head = lines[0].split(",")
    col = head.index("vllm_version")
    import csv
    import io

    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    rows[1][col] = "latest"
    bad = tmp_path / "runs.csv"
    with bad.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(ReferenceError, match="not a version number"):
        load_reference(bad)


class _WordTok:
    vocab_size = 50

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return " ".join(f"t{i}" for i in ids)


def test_pool_prompts_repeat_a_fixed_set() -> None:
    from llm_emu.reference.prompts import pool_prompts

    prompts = pool_prompts(_WordTok(), pool=4, input_len=6, num_requests=40, seed=3)
    assert len(prompts) == 40 and len(set(prompts)) == 4  # 40 draws from 4 distinct prompts: repeats
    assert all(len(p.split()) == 6 for p in prompts)
    assert prompts == pool_prompts(_WordTok(), 4, 6, 40, seed=3)


def test_a_pool_row_warms_the_prefix_cache_then_measures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import llm_emu.reference.prompts as prompts

    parts: list[tuple[int, int, int]] = []

    def fake_pool_file(model: str, pool: int, input_len: int, total: int, part: tuple[int, int],
                       seed: int = 0) -> Path:
        parts.append((total, *part))
        return tmp_path / f"pool-{part[0]}-{part[1]}.jsonl"

    monkeypatch.setattr(prompts, "pool_file", fake_pool_file)
    row = make_row("h", gpu="h200_sxm", arrival="concurrency", max_concurrency=16, num_prompts=None,
                   prompt_pool=100, warmup_requests=32, published={"mean_tpot_ms": 15.0, "mean_ttft_ms": 400.0})
    p = plan_row(row, ReplayOptions(profile="aic:{gpu}"))
    assert p.warmup is not None and p.warmup.num_prompts == 32 and p.workload.num_prompts == 4 * 16
    # one draw of warm-up + measured requests from the pool, split in two consecutive parts
    assert parts == [(96, 32, 96), (96, 0, 32)]
    assert p.workload.dataset_path != p.warmup.dataset_path and p.workload.dataset == "custom"
    for w in (p.workload, p.warmup):  # a closed loop at the row's concurrency
        assert w.max_concurrency == 16 and math.isinf(w.request_rate)
    assert any("warm-up of 32" in d for d in p.deviations)
    with pytest.raises(Exception, match="needs a prompt_pool"):
        plan_row(make_row("w", warmup_requests=8))


def test_the_warm_up_keeps_its_prefix_cache_for_the_measured_run(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    import llm_emu.virtual as virtual
    from llm_emu.benchclient import Workload
    from llm_emu.reference.replay import replay

    seen: list[list[tuple[int, bool]]] = []

    def fake_cells(model: str, profile: str, args: object, cells: list, **kw: object) -> list[dict]:
        seen.append([(c.workload.num_prompts, c.reset_prefix_cache) for c in cells])
        return [{"n": c.workload.num_prompts} for c in cells]

    monkeypatch.setattr(virtual, "run_virtual_cells", fake_cells)
    base = plan_row(make_row("a"), ReplayOptions(profile="aic:{gpu}"))
    warm = plan_row(make_row("b"), ReplayOptions(profile="aic:{gpu}"))
    from dataclasses import replace

    warm = replace(warm, workload=replace(warm.workload, num_prompts=7), warmup=Workload(num_prompts=3))
    out = dict((p.row.row_id, r) for p, r in replay([base, warm], "virtual", tmp_path))
    assert seen == [[(100, True), (3, True), (7, False)]]
    assert out == {"a": {"n": 100}, "b": {"n": 7}}
