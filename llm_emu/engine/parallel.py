"""Tensor and pipeline parallelism of the emulated server: one emulated worker stands for TP x PP GPUs.

No collective runs and no GPU is needed: the parallel layout changes only what vLLM's scheduler can observe of
the device, and both are derived here from the layout:

* the KV capacity — every GPU holds a shard of the weights and its TP share of the KV heads of its pipeline
  stage's layers; vLLM takes the smallest block count over all GPUs (``llm_emu/engine/kvspec.py``);
* the step latency — the oracle is asked for that layout (aiconfigurator models TP/PP), and a measured pack
  only ever answers for the layout it was captured at.

Data parallelism is vLLM's own: each of its N engine cores gets one emulated worker with this layout.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from llm_emu.engine import compat
from llm_emu.errors import ProfileError
from llm_emu.profile.pack import ProfileMeta, ProfilePack


@dataclass(frozen=True)
class ParallelLayout:
    """The GPUs one engine core (one data-parallel replica) spans."""

    tensor_parallel_size: int = 1
    """TP degree: GPUs that split every layer."""
    pipeline_parallel_size: int = 1
    """PP degree: GPUs that hold consecutive groups of layers."""

    @property
    def world_size(self) -> int:
        """GPUs per replica."""
        return self.tensor_parallel_size * self.pipeline_parallel_size

    def describe(self) -> str:
        """E.g. ``TP=4 PP=1``."""
        return f"TP={self.tensor_parallel_size} PP={self.pipeline_parallel_size}"

    @classmethod
    def from_vllm_config(cls, vllm_config: Any) -> ParallelLayout:
        """The layout vLLM resolved for this engine core."""
        pc = vllm_config.parallel_config
        return cls(int(pc.tensor_parallel_size), int(pc.pipeline_parallel_size))

    @classmethod
    def from_flags(cls, vllm_args: list[str]) -> ParallelLayout:
        """The layout a `vllm serve` argv asks for (``-tp``/``--tensor-parallel-size``, ``-pp``/...)."""
        return cls(compat.parallel_size(vllm_args, "--tensor-parallel-size"),
                   compat.parallel_size(vllm_args, "--pipeline-parallel-size"))

    @classmethod
    def of_pack(cls, pack: ProfilePack) -> ParallelLayout:
        """The layout a pack describes."""
        eng = pack.meta.engine
        return cls(eng.tensor_parallel_size, eng.pipeline_parallel_size)


def for_layout(pack: ProfilePack, layout: ParallelLayout) -> ProfilePack:
    """The pack as seen by a server with ``layout``.

    Constructed packs (``aic:``, ``formula:``; no directory) describe whatever layout the server runs, so they
    take it. A pack loaded from a directory was measured (or calibrated) at one layout and answers only for it.

    Raises:
        ProfileError: a pack from a directory recorded another layout.
    """
    own = ParallelLayout.of_pack(pack)
    if own == layout:
        return pack
    if pack.path is not None:
        raise ProfileError(
            f"profile {pack.path} was captured at {own.describe()} but the server runs {layout.describe()}; "
            f"capture a pack at {layout.describe()} (llm-emu profile ... --tensor-parallel-size "
            f"{layout.tensor_parallel_size} --pipeline-parallel-size {layout.pipeline_parallel_size}) "
            "or use an aic:<gpu> profile"
        )
    engine = replace(pack.meta.engine, tensor_parallel_size=layout.tensor_parallel_size,
                     pipeline_parallel_size=layout.pipeline_parallel_size)
    if layout.pipeline_parallel_size > 1 and not compat.async_scheduling_with_pp():
        engine = replace(engine, async_scheduling=False)  # vLLM would refuse the profile's flag
    meta = ProfileMeta(**{**pack.meta.__dict__, "engine": engine})
    return ProfilePack(meta=meta, steps=pack.steps, requests=pack.requests, path=pack.path)
