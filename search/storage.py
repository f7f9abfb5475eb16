"""Study storage: RDB with heartbeats, recovery of trials orphaned by a killed controller, trial budget.

With ask/tell nobody records heartbeats for us (only `study.optimize` does), so `Heartbeat` runs a
thread that beats for every trial this controller holds.
"""

from __future__ import annotations

import contextlib
import datetime
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from search.spec import SearchSpec

SKIPPED_ATTR = "skipped"
"""User attr on FAIL trials that were never run (a duplicate config); they do not count toward n_trials."""


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence Optuna's experimental-API notices and its "heartbeat is meant for Study.optimize" warning:
    heartbeats with ask/tell are exactly what this module implements."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        yield


def default_storage_url(out_dir: Path) -> str:
    """sqlite:///OUT/study.db (absolute path)."""
    return f"sqlite:///{(out_dir / 'study.db').resolve()}"


def make_storage(url: str, spec: SearchSpec) -> RDBStorage:
    """RDBStorage with heartbeats and a retry callback for trials whose controller died."""
    engine_kwargs: dict[str, object] = {}
    if url.startswith("sqlite"):
        # The heartbeat thread writes while the controller writes; wait for SQLite's lock, don't fail.
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True
    with quiet():
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=spec.heartbeat_interval_s,
            grace_period=spec.grace_period_s,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=spec.max_retry),
        )


class Heartbeat:
    """Records a heartbeat every `interval` seconds for each trial this controller is running."""

    def __init__(self, storage: RDBStorage, interval: float) -> None:
        self._storage, self._interval = storage, interval
        self._ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="search-heartbeat", daemon=True)

    def add(self, trial_id: int) -> None:
        """Start beating for `trial_id` (beats once right away, so a kill leaves a stale-able trial)."""
        self._storage.record_heartbeat(trial_id)
        with self._lock:
            self._ids.add(trial_id)

    def remove(self, trial_id: int) -> None:
        with self._lock:
            self._ids.discard(trial_id)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                ids = list(self._ids)
            for trial_id in ids:
                self._storage.record_heartbeat(trial_id)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()


def trial_id(storage: RDBStorage, study: optuna.Study, number: int) -> int:
    """The storage's id of trial ``number`` of ``study`` (public storage API; Optuna's ``_trial_id`` is private)."""
    study_id = storage.get_study_id_from_name(study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def _beat_old_running(study: optuna.Study, storage: RDBStorage, grace_s: float, beaten: set[int]) -> None:
    """Give each RUNNING trial older than the grace period one heartbeat (once; ``beaten`` remembers).

    Optuna's stale check skips trials that never beat (a controller killed between ``ask`` and its first beat),
    so they would stay RUNNING forever. One beat makes a dead one stale after the grace period; a live
    controller's trial beats anyway, so the extra beat changes nothing for it.
    """
    now = datetime.datetime.now()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        old = t.datetime_start is not None and (now - t.datetime_start).total_seconds() > grace_s
        if old and t.number not in beaten:
            beaten.add(t.number)
            storage.record_heartbeat(trial_id(storage, study, t.number))


def recover_stale(
    study: optuna.Study, storage: RDBStorage, spec: SearchSpec, log: Callable[[str], None] = print
) -> None:
    """Fail (and re-enqueue via the retry callback) RUNNING trials left by a killed controller.

    A trial whose last heartbeat is younger than the grace period may belong to a live controller, so we
    wait up to one grace period for it to go stale; trials still beating after that are left alone.
    """
    deadline = time.monotonic() + 2 * spec.grace_period_s + 2 * spec.heartbeat_interval_s
    announced, beaten = False, set[int]()
    with quiet():
        optuna.storages.fail_stale_trials(study)
    while True:
        _beat_old_running(study, storage, spec.grace_period_s, beaten)
        with quiet():
            optuna.storages.fail_stale_trials(study)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running or time.monotonic() > deadline:
            return
        if not announced:
            log(
                f"search: {len(running)} RUNNING trial(s) from an earlier controller; waiting up to "
                f"{spec.grace_period_s} s for their heartbeats to go stale"
            )
            announced = True
        time.sleep(min(1.0, spec.heartbeat_interval_s))


RETRY_OF_ATTR = "retry_of"
"""User attr of a trial enqueued again by ``--retry-failed``: the number of the failed trial it repeats."""


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of FAIL trials that have a retry (so they must not count): after a dead controller, or
    ``--retry-failed``."""
    # retry_history, not retried_trial_number: a retry of a retry keeps the *first* failed number.
    with quiet():
        stale = {n for t in trials for n in (RetryHeartbeatStaleTrialCallback.retry_history(t) or [])}
    return stale | {int(t.user_attrs[RETRY_OF_ATTR]) for t in trials if RETRY_OF_ATTR in t.user_attrs}


def counted_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Trials that count toward n_trials: COMPLETE, PRUNED, and FAIL that was not retried nor skipped."""
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    final = (TrialState.COMPLETE, TrialState.PRUNED)
    return [
        t
        for t in trials
        if t.state in final
        or (t.state == TrialState.FAIL and t.number not in retried and SKIPPED_ATTR not in t.user_attrs)
    ]
