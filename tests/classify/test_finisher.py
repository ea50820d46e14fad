"""The finisher: each classification's tail on its own thread while the next is inferred.

Its contract (order, bounded hand-off, failures handed back), the policy that measures whether
handing off pays, and the daemon with it: every frame published once, in order, none lost at the
end, and an error in finishing stops the daemon instead of vanishing with a thread.
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from edgeswin.classify.finisher import THREAD_NAME, Finisher, HandOffPolicy
from edgeswin.config import load_config
from edgeswin.daemon import Daemon
from tests.harness import PRIMARY, write_config


def test_jobs_finish_in_order_and_a_failure_comes_back_with_its_job():
    done: list[int] = []

    def finish(job: int) -> None:
        time.sleep(0.001)
        if job == 3:
            raise ValueError("job 3 broke")
        done.append(job)

    finisher = Finisher(finish)
    for job in range(10):
        finisher.submit(job)
    failed = finisher.drain()
    assert done == [0, 1, 2, 4, 5, 6, 7, 8, 9]  # in order; the ones after a failure still run
    assert [(job, str(exc)) for job, exc in failed] == [(3, "job 3 broke")]
    assert finisher.idle and finisher.failures() == []
    finisher.close()
    with pytest.raises(RuntimeError):
        finisher.submit(11)


def test_a_slow_finisher_holds_the_submitter_back_instead_of_queueing():
    gate = threading.Event()
    started: list[int] = []

    def finish(job: int) -> None:
        started.append(job)
        gate.wait(10)

    finisher = Finisher(finish, depth=2)
    finisher.submit(0)  # taken at once, then stuck on the gate
    deadline = time.monotonic() + 5
    while not started and time.monotonic() < deadline:
        time.sleep(0.001)
    finisher.submit(1)
    finisher.submit(2)  # two wait: the limit
    blocked = threading.Thread(target=finisher.submit, args=(3,))
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive(), "a third waiting job was accepted"
    gate.set()
    blocked.join(5)
    assert not blocked.is_alive()
    assert finisher.close() == []
    assert started == [0, 1, 2, 3]


def _run_policy(policy: HandOffPolicy, cycle_ms: dict[bool, float], seconds: float,
                start: float = 100.0) -> list[bool]:
    """Drive the policy as a saturated loop whose cycle takes cycle_ms[mode]; its choices."""
    now, choices = start, []
    while now < start + seconds:
        mode = policy.decide(now)
        choices.append(mode)
        now += cycle_ms[mode] / 1000
    return choices


@pytest.mark.parametrize("faster", [True, False])
def test_the_policy_keeps_whichever_way_is_measured_faster(faster):
    policy = HandOffPolicy(trial_s=0.5, keep_s=10.0)
    cycles = {faster: 2.0, not faster: 2.6}
    choices = _run_policy(policy, cycles, 30.0)
    assert policy.trials >= 2, "no trial again after keep_s"
    assert policy.cycle_ms[faster] == pytest.approx(2.0)
    assert policy.cycle_ms[not faster] == pytest.approx(2.6)
    # Outside the trials (about 1 s in every 11) it runs the faster way.
    assert choices.count(faster) / len(choices) > 0.85
    assert choices[-1] == faster
    # The other way again when the costs turn round (a faster engine rung, say).
    later = _run_policy(policy, {faster: 2.6, not faster: 2.0}, 15.0, start=130.0)
    assert later[len(later) // 2:].count(not faster) / (len(later) - len(later) // 2) > 0.8


def test_the_policy_finds_the_faster_way_through_noise_and_drift():
    # An ONNX Runtime engine on a busy machine: cycles scattered by 1 ms around a mean that
    # drifts from 8 to 12 ms over every trial, with handing off 0.4 ms faster. Blocks of each
    # way interleaved within a trial put the drift on both alike.
    rng = random.Random(7)
    policy = HandOffPolicy(trial_s=1.0, keep_s=0.0)
    now, chosen = 0.0, []
    while len(chosen) < 20:
        mode = policy.decide(now)
        if not policy.in_trial:  # a trial just ended
            chosen.append(mode)
        drift = 8.0 + 4.0 * ((now % 1.0) / 1.0)
        now += max(drift - (0.4 if mode else 0.0) + rng.gauss(0, 1.0), 0.1) / 1000
    assert chosen.count(True) >= 15, chosen  # a guess: 10 ± 2


def test_trials_thin_out_while_they_agree_and_an_engine_switch_starts_one_at_once():
    policy = HandOffPolicy(trial_s=0.5, keep_s=10.0, max_keep_s=40.0)
    starts, now, was = [], 0.0, False
    while now < 300.0:
        mode = policy.decide(now)
        if policy.in_trial and not was:
            starts.append(now)
        was = policy.in_trial
        now += (2.0 if mode else 2.6) / 1000
    kept = [b - a - 0.5 for a, b in zip(starts, starts[1:])]  # less the trial itself
    assert kept[:3] == pytest.approx([10, 20, 40], abs=0.1), starts
    assert kept[3:] == pytest.approx([40] * len(kept[3:]), abs=0.1) and len(kept) >= 6
    assert policy.handing_off
    policy.retry()
    policy.decide(now)
    assert policy.in_trial


def test_the_policy_never_hands_off_when_switched_off():
    policy = HandOffPolicy(enabled=False)
    assert not any(_run_policy(policy, {True: 1.0, False: 5.0}, 5.0))


def _config(tmp_path, broker, videos):
    return load_config(write_config(tmp_path, broker.port, {
        "north": {"source": str(videos["north"]), "fps": 0, "loop": False, "realtime": False},
        "south": {"source": str(videos["south"]), "fps": 0, "loop": False, "realtime": False}},
        {"engines": [{"name": "primary", "model": str(PRIMARY), "threads": 1}]}))


def test_two_saturating_cameras_are_finished_in_order_and_none_is_lost(tmp_path, broker,
                                                                        subscriber, videos):
    # Two every-frame file cameras keep a frame waiting after each inference, so the first
    # trial hands off. Each file camera is consumer-paced: every frame of it is classified.
    daemon = Daemon(_config(tmp_path, broker, videos))
    seen: list[tuple[str, str, int, int]] = []
    daemon.recorder.listeners.append(lambda p: seen.append(
        (threading.current_thread().name, p["camera"], p["seq"], p["frame_index"])))
    assert daemon.run() == 0
    assert daemon.stop_reason == "every source has ended"
    threads = {name for name, *_ in seen}
    assert THREAD_NAME in threads, "nothing was handed to the finisher"
    state = daemon.stats()["finisher"]  # as <root>/stats says it
    assert state["trials"] >= 1 and set(state["cycle_ms"]) == {"finisher", "loop"}
    frames = {cam.name: cam.capture.frames_read for cam in daemon.cameras}
    for camera in ("north", "south"):
        mine = [(seq, index) for _, cam, seq, index in seen if cam == camera]
        assert [s for s, _ in mine] == list(range(1, len(mine) + 1)), f"{camera}: seq out of order"
        indexes = [i for _, i in mine]
        assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes)
        assert len(mine) == frames[camera] == 120, f"{camera}: frames lost or doubled"
    # Everything finished was also published before the daemon said its last word.
    assert subscriber.wait_for(lambda: sum(len(subscriber.on(f"edgeswin/testdev/{c}/"
                                                             "classification"))
                                           for c in ("north", "south")) == len(seen), 10)


def test_an_error_while_finishing_stops_the_daemon_and_says_why(tmp_path, broker, subscriber,
                                                                 videos):
    daemon = Daemon(_config(tmp_path, broker, videos))

    def listener(payload: dict) -> None:
        if threading.current_thread().name == THREAD_NAME:
            raise RuntimeError(f"a consumer broke on {payload['camera']}")

    daemon.recorder.listeners.append(listener)
    with pytest.raises(RuntimeError, match="a consumer broke on"):
        daemon.run()
    assert daemon.stop_reason.startswith("RuntimeError: a consumer broke on")
    # It stopped long before the videos ended, and still said goodbye on the broker.
    assert all(cam.capture.frames_read < 120 for cam in daemon.cameras)
    assert subscriber.wait_for(lambda: subscriber.on("edgeswin/testdev/north/availability")[-1:]
                               == [b"offline"], 10)
