"""Grid expansion, built-in and user pruning, content hashes, vllm flags."""

from __future__ import annotations

from sweep_factories import make_spec

from orchestrator.trials import content_hash, expand


def test_grid_product_and_builtin_pruning(tmp_path):
    trials, pruned = expand(make_spec(tmp_path))
    assert [t.label for t in trials] == [
        "enable_chunked_prefill=true max_num_batched_tokens=2048",
        "enable_chunked_prefill=true max_num_batched_tokens=8192",
        "enable_chunked_prefill=false max_num_batched_tokens=8192",
    ]
    assert len(pruned) == 1
    assert pruned[0].label == "enable_chunked_prefill=false max_num_batched_tokens=2048"
    assert "smaller than max_model_len (4096)" in pruned[0].reason


def test_model_context_length_used_when_max_model_len_unset(tmp_path):
    # llama-3.1-8b ships max_position_embeddings=131072: 8192 no longer fits without chunking
    trials, pruned = expand(make_spec(tmp_path, engine_args={}))
    assert len(trials) == 2 and len(pruned) == 2
    assert "(131072)" in pruned[0].reason


def test_batched_tokens_below_max_num_seqs_pruned(tmp_path):
    grid = {"max_num_seqs": [256, 1024], "max_num_batched_tokens": [512, 8192]}
    trials, pruned = expand(make_spec(tmp_path, grid=grid))
    assert len(trials) == 3
    assert "smaller than max_num_seqs (1024)" in pruned[0].reason


def test_user_constraint_with_when_and_reason(tmp_path):
    grid = {"enable_chunked_prefill": [True], "long_prefill_token_threshold": [0, 256, 4096],
            "max_num_batched_tokens": [2048]}
    rule = {"rule": "long_prefill_token_threshold <= max_num_batched_tokens",
            "when": {"enable_chunked_prefill": True}, "reason": "threshold above the step budget"}
    trials, pruned = expand(make_spec(tmp_path, grid=grid, constraints=[rule]))
    assert len(trials) == 2
    assert [p.reason for p in pruned] == ["threshold above the step budget"]


def test_hash_is_content_based_and_stable(tmp_path):
    a, _ = expand(make_spec(tmp_path))
    b, _ = expand(make_spec(tmp_path, name="renamed", retries=5))
    assert [t.hash for t in a] == [t.hash for t in b]  # name/retries do not change results
    c, _ = expand(make_spec(tmp_path, workload={"num_prompts": 11, "request_rates": [2, "inf"]}))
    assert not {t.hash for t in a} & {t.hash for t in c}
    assert content_hash({"a": 1, "b": float("inf")}) == content_hash({"b": "inf", "a": 1})


def test_duplicate_grid_values_run_once(tmp_path):
    trials, _ = expand(make_spec(tmp_path, grid={"max_num_seqs": [64, 64]}))
    assert len(trials) == 1


def test_vllm_flags(tmp_path):
    grid = {"enable_prefix_caching": [False], "max_num_seqs": [64], "kv_cache_dtype": [None]}
    (trial,), _ = expand(make_spec(tmp_path, grid=grid, engine_args={"compilation_config": {"level": 0}}))
    assert trial.vllm_flags() == (
        "--compilation-config", '{"level": 0}', "--no-enable-prefix-caching", "--max-num-seqs", "64")


def test_pack_key_covers_every_file_of_the_pack(tmp_path):
    """A pack edited in place (steps.parquet fixed, a file added) gives new trial keys: its trials run again."""
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "profile.json").write_text("{}")
    (pack / "steps.parquet").write_bytes(b"v1")
    spec = make_spec(tmp_path, profile=str(pack))
    first = [t.hash for t in expand(spec)[0]]
    (pack / "steps.parquet").write_bytes(b"v2")
    second = [t.hash for t in expand(spec)[0]]
    (pack / "requests.parquet").write_bytes(b"r")
    third = [t.hash for t in expand(spec)[0]]
    assert not set(first) & set(second) and not set(second) & set(third)
    assert expand(spec)[0][0].profile_id.startswith(f"{pack}@")
