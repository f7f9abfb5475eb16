"""Real-hardware trials go to actors holding the hardware resource (declared on a CPU-only node here)."""

from __future__ import annotations

from sweep_factories import make_spec

from orchestrator.actors import ActorResources
from orchestrator.controller import Controller, ControllerOptions
from orchestrator.results import ResultStore
from orchestrator.testing import FakeRunner
from orchestrator.trials import expand


def test_hardware_pool_with_declared_gpu(tmp_path):
    import ray

    from orchestrator.controller import runtime_env

    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, runtime_env=runtime_env(), log_to_driver=False)
    try:
        trials, _ = expand(make_spec(tmp_path, kind="real"))
        options = ControllerOptions(out_dir=str(tmp_path), resources=ActorResources(1, None, "GPU"))
        results = Controller(FakeRunner(), ResultStore(tmp_path), options).run(trials)
        assert all(r.status == "ok" for r in results)
    finally:
        ray.shutdown()
