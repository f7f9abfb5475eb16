"""Core split of the CPU hardware loop (no server needed)."""

from __future__ import annotations

import os

import pytest

from llm_emu.capture.cpuset import INPROC_EXECUTOR, ServerPinning, _parse_cpus, process_group


def test_parse_cpus() -> None:
    assert _parse_cpus("0,2-4") == {0, 2, 3, 4}


def test_split_defaults_on_cpu() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    pin = ServerPinning.make(None, None, cpu_platform=True)
    if len(allowed) < 2:
        assert pin.mode == "none"
        return
    assert pin.mode == "split"
    assert pin.device_cpus == {allowed[-1]} and pin.host_cpus == set(allowed[:-1])
    assert pin.server_env() == {"OMP_NUM_THREADS": "1"}
    assert pin.real_server_args(True) == ["--distributed-executor-backend", INPROC_EXECUTOR]
    mp = ServerPinning.make("split", None, cpu_platform=True, executor="mp")
    assert mp.server_env()["VLLM_CPU_OMP_THREADS_BIND"] == str(allowed[-1])
    assert mp.real_server_args(True) == []


def test_no_split_on_gpu_or_when_asked() -> None:
    assert ServerPinning.make(None, None, cpu_platform=False).mode == "none"
    none = ServerPinning.make("none", None, cpu_platform=True)
    assert none.server_env() == {}


def test_device_cpus_must_leave_host_cores() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    with pytest.raises(ValueError):
        ServerPinning.make("split", ",".join(map(str, allowed)), cpu_platform=True)


def test_process_group_contains_own_group() -> None:
    assert os.getpid() in process_group(os.getpgrp())
