"""The device timeline books steps back to back; overshoot never accumulates."""

from __future__ import annotations

from llm_emu.engine.clock import DeviceTimeline


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t

    def sleep_until(self, t: float) -> None:
        self.t = max(self.t, t) + 0.0003  # every sleep overshoots by 0.3 ms


def test_steps_queue_behind_each_other() -> None:
    clock = FakeClock()
    tl = DeviceTimeline(clock)
    a = tl.book(0.010)
    b = tl.book(0.010)  # launched while a is running (async scheduling): starts when a ends
    assert (a.start, a.end) == (100.0, 100.010)
    assert b.start == a.end and abs(b.end - 100.020) < 1e-12


def test_overshoot_does_not_accumulate_in_a_sync_engine() -> None:
    """Sync engine: each step is launched only after the previous output is released (late by 0.3 ms)."""
    clock = FakeClock()
    tl = DeviceTimeline(clock)
    for _ in range(1000):
        b = tl.book(0.005)
        clock.sleep_until(b.end)
        tl.released(b, clock.now())
    # without the credit this would be 1000 x (5 + 0.3) ms
    assert abs((clock.t - 100.0) - (1000 * 0.005 + 0.0003)) < 1e-6


def test_cpu_gaps_are_not_credited() -> None:
    """Real CPU time between steps (here 2 ms) is kept: only the overshoot is credited."""
    clock = FakeClock()
    tl = DeviceTimeline(clock)
    for _ in range(100):
        b = tl.book(0.005)
        clock.sleep_until(b.end)
        tl.released(b, clock.now())
        clock.t += 0.002
    assert abs((clock.t - 100.0) - 100 * 0.007 - 0.0003) < 1e-6


def test_host_stalls_are_not_paid_back() -> None:
    """A 50 ms stall of the host is not credited: later steps keep their full device time."""
    clock = FakeClock()
    tl = DeviceTimeline(clock)
    b = tl.book(0.005)
    clock.sleep_until(b.end)
    clock.t += 0.050  # the EngineCore thread was descheduled
    tl.released(b, clock.now())
    nxt = tl.book(0.005)
    assert nxt.end - clock.now() >= 0.005 - 0.001 - 1e-9


def test_no_credit_after_an_idle_engine() -> None:
    """A step launched long after the late release (a request arriving at an idle engine) gets no credit."""
    clock = FakeClock()
    tl = DeviceTimeline(clock)
    b = tl.book(0.005)
    clock.sleep_until(b.end)
    tl.released(b, clock.now())  # 0.3 ms late
    clock.t += 2.0  # idle until the next request arrives
    nxt = tl.book(0.005)
    assert nxt.start == nxt.launched and abs(nxt.end - nxt.launched - 0.005) < 1e-12


def test_pipeline_keeps_steps_in_flight() -> None:
    """PP 2: a 10 ms step occupies each stage 5 ms; steps launched together leave 5 ms apart, not 10."""
    clock = FakeClock()
    tl = DeviceTimeline(clock, stages=2)
    t0 = clock.now()
    a, b, c = tl.book(0.010), tl.book(0.010), tl.book(0.010)
    assert [round(x.start - t0, 9) for x in (a, b, c)] == [0.0, 0.005, 0.010]
    assert [round(x.end - t0, 9) for x in (a, b, c)] == [0.010, 0.015, 0.020]


def test_pipeline_waits_for_a_busy_later_stage() -> None:
    """A short step behind a long one cannot overtake it in the last stage."""
    clock = FakeClock()
    tl = DeviceTimeline(clock, stages=2)
    t0 = clock.now()
    long, short = tl.book(0.020), tl.book(0.002)
    assert round(short.start - t0, 9) == 0.010  # stage 0 is free once the long step moved on
    assert round(short.end - t0, 9) == 0.021  # stage 1 is busy with the long step until 20 ms
    assert short.end > long.end


def test_one_stage_is_the_single_queue() -> None:
    clock = FakeClock()
    one, piped = DeviceTimeline(clock), DeviceTimeline(clock, stages=1)
    for lat in (0.003, 0.010, 0.001):
        assert one.book(lat) == piped.book(lat)
