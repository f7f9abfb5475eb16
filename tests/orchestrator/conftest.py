"""Fixtures for orchestrator tests (no vLLM started here)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """A 2-CPU local Ray cluster shared by the tests of one module."""
    import ray

    from orchestrator.actors import NAMESPACE
    from orchestrator.controller import runtime_env

    ray.init(num_cpus=2, include_dashboard=False, namespace=NAMESPACE, runtime_env=runtime_env(),
             log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
