"""The governor's levers against scripted traces with a fake clock: exact action times for each
lever order, recovery in reverse, unusable rungs, DLA builds, power modes, fps arithmetic.
Settings as in test_fallback: degrade above 85 C, recover below 75 C, hold 5 s, cooldown 30 s,
dwell 10 s; readings once a second."""

from __future__ import annotations

import pytest

from edgeswin.classify.schedule import governed_fps
from edgeswin.config import CameraConfig, FallbackConfig, dla_twins
from edgeswin.errors import ConfigError
from edgeswin.govern.fallback import FallbackPolicy, Readings
from tests.harness import PRIMARY, SMALL, write_config

BASE = dict(degrade_above_c=85, recover_below_c=75, hold_s=5, cooldown_s=30, min_dwell_s=10,
            latency_retry_s=300)

# Hot (86 C and up) from t=26 to t=99, then 70 C: long enough for every lever to go all the
# way down and come all the way back.
HEAT = [60.0 + t if t < 100 else 70.0 for t in range(400)]


def replay(policy: FallbackPolicy, temps=HEAT, p95=None):
    """[(t, lever, from, to, engine served after it)]"""
    out = []
    for t, temp in enumerate(temps):
        action = policy.update(Readings(float(t), {"tj": temp}, p95))
        if action:
            out.append((t, action.lever, action.frm, action.to, policy.serving))
    return out


def policy(levers, rungs=3, **kw) -> FallbackPolicy:
    modes = ["15W", "7W"] if "power_mode" in levers else []
    return FallbackPolicy(FallbackConfig(**BASE, levers=levers, power_modes=modes), rungs, 0.0,
                          thermal=True, **kw)


def test_fps_first_then_rung_and_recovery_in_reverse():
    # Down: hold 5 s from t=26, then one lever step per dwell (10 s). Up: 30 s of cool from
    # t=100, then each further step 30 s after the one before (the cooldown restarts).
    assert replay(policy(["fps", "rung"], fps_steps=2)) == [
        (31, "fps", 0, 1, 0), (41, "fps", 1, 2, 0), (51, "rung", 0, 1, 1), (61, "rung", 1, 2, 2),
        (130, "rung", 2, 1, 1), (161, "rung", 1, 0, 0), (192, "fps", 2, 1, 0),
        (223, "fps", 1, 0, 0)]


def test_rung_first_then_fps():
    assert replay(policy(["rung", "fps"], fps_steps=2)) == [
        (31, "rung", 0, 1, 1), (41, "rung", 1, 2, 2), (51, "fps", 0, 1, 2), (61, "fps", 1, 2, 2),
        (130, "fps", 2, 1, 2), (161, "fps", 1, 0, 2), (192, "rung", 2, 1, 1),
        (223, "rung", 1, 0, 0)]


def test_every_lever_with_a_dla_build_and_a_power_mode():
    # Engines: 0 primary (GPU), 1 small, 2 tiny, 3 = the primary's DLA build. The rung lever
    # walks 0, 1, 2; the dla lever serves 3 while on rung 0.
    p = policy(["fps", "dla", "rung", "power_mode"], rungs=4, fps_steps=1, power_modes=1,
               twins={0: 3})
    assert p.levels() == {"fps": 0, "dla": 0, "rung": 0, "power_mode": 0}
    assert replay(p) == [
        (31, "fps", 0, 1, 0), (41, "dla", 0, 1, 3), (51, "rung", 0, 1, 1), (61, "rung", 1, 2, 2),
        (71, "power_mode", 0, 1, 2),
        (130, "power_mode", 1, 0, 2), (161, "rung", 2, 1, 1), (192, "rung", 1, 0, 3),
        (223, "dla", 1, 0, 0), (254, "fps", 1, 0, 0)]


def test_a_lever_that_cannot_move_is_passed_over():
    # No camera has a min_fps (fps_steps 0) and no power modes: only the rung lever acts, at
    # the same times as the rung-only policy always did.
    p = policy(["fps", "power_mode", "rung"], fps_steps=0, power_modes=0)
    assert p.levers == ["rung"]
    assert replay(p)[:2] == [(31, "rung", 0, 1, 1), (41, "rung", 1, 2, 2)]
    # A pinned rung keeps the engine but still lowers the rate.
    pinned = FallbackPolicy(FallbackConfig(**BASE, pinned_rung=1), 3, 0.0, thermal=True,
                            fps_steps=2)
    assert replay(pinned) == [(31, "fps", 0, 1, 1), (41, "fps", 1, 2, 1),
                              (130, "fps", 2, 1, 1), (161, "fps", 1, 0, 1)]


def test_unusable_rungs_are_stepped_over_and_a_finished_build_is_served_at_once():
    p = policy(["rung"], rungs=3, usable={0, 2})
    assert replay(p, HEAT[:60]) == [(31, "rung", 0, 2, 2)]
    # Rung 1's engine finished building; the device is cool now: served at once.
    action = p.adopt(1, Readings(60.0, {"tj": 70.0}), "engine ready")
    assert (action.lever, action.frm, action.to, p.serving) == ("rung", 2, 1, 1)
    # While hot, a finished build waits for the normal recovery.
    hot = policy(["rung"], rungs=3, usable={0, 2})
    replay(hot, HEAT[:60])
    assert hot.adopt(1, Readings(60.0, {"tj": 90.0}), "engine ready") is None
    assert hot.serving == 2 and 1 in hot.usable


def test_a_slow_rung_is_retried_late_and_fps_goes_first():
    # The engine is slow (p95 80 ms > 50 ms budget) on rung 0 only; the device stays cool.
    p = FallbackPolicy(FallbackConfig(**{**BASE, "latency_budget_ms": 50}, levers=["fps", "rung"]),
                       2, 0.0, thermal=True, fps_steps=1)
    out = []
    for t in range(420):
        action = p.update(Readings(float(t), {"tj": 50.0}, 80.0 if p.rung == 0 else 20.0))
        if action:
            out.append((t, action.lever, action.frm, action.to, action.reason.split(":")[0]))
    # fps first at 10 (the start's dwell), then rung 1 at 20; rung 0 is retried only
    # latency_retry_s after it was left (320), then 30 s of cooldown: 350. It is slow again,
    # and fps is already down as far as it goes: the rung lever again, after the dwell.
    assert out == [(10, "fps", 0, 1, "slow"), (20, "rung", 0, 1, "slow"),
                   (350, "rung", 1, 0, "recovered"), (360, "rung", 0, 1, "slow")]


def test_a_power_mode_that_did_not_take_is_put_back():
    p = policy(["power_mode"], power_modes=2)
    action = None
    for t, temp in enumerate(HEAT[:40]):
        action = action or p.update(Readings(float(t), {"tj": temp}))
    assert (action.lever, action.frm, action.to) == ("power_mode", 0, 1)
    p.undo(action)
    assert p.levels() == {"power_mode": 0}
    # Tried again only after a new hold (from t=40) and the dwell from the failed attempt (31).
    assert p.update(Readings(40.0, {"tj": 99.0})) is None
    again = next(a for t in range(41, 60) if (a := p.update(Readings(float(t), {"tj": 99.0}))))
    assert (again.readings.now, again.to) == (45.0, 1)


def test_governed_fps_steps_toward_min_fps():
    cam = CameraConfig(name="c", source="rtsp://h/x", fps=10, min_fps=4)
    assert [governed_fps(cam, level, 3) for level in range(4)] == [10, 8, 6, 4]
    every = CameraConfig(name="c", source="rtsp://h/x", fps=0, min_fps=5)
    assert [governed_fps(every, level, 2) for level in range(3)] == [0, 5, 5]
    fixed = CameraConfig(name="c", source="rtsp://h/x", fps=10)
    assert governed_fps(fixed, 2, 2) == 10
    # A region slower than the camera's floor keeps its own rate; one with its own floor uses it.
    regional = CameraConfig(name="c", source="rtsp://h/x", fps=10, min_fps=4, regions=[
        {"name": "door", "box": [0, 0, 0.5, 1], "fps": 2},
        {"name": "gate", "box": [0.5, 0, 1, 1], "min_fps": 1}])
    door, gate = (regional.for_region(r) for r in regional.regions)
    assert governed_fps(door, 2, 2) == 2 and governed_fps(gate, 2, 2) == 1


def test_lever_config_mistakes_are_named_with_file_and_line(tmp_path):
    from edgeswin.config import load_config

    with pytest.raises(ValueError, match="power_modes is empty"):
        FallbackConfig(levers=["fps", "power_mode"])
    with pytest.raises(ValueError, match="each lever once"):
        FallbackConfig(levers=["fps", "fps"])
    with pytest.raises(ValueError, match=r"\{id\}"):
        FallbackConfig(power_mode_command=["nvpmodel", "-m"])
    cfg = write_config(tmp_path / "a", 1883, {"cam": {"source": "rtsp://h/x", "fps": 2,
                                                      "min_fps": 5}},
                       {"fallback": {"levers": ["fps", "dla"]}})
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    text = "\n".join(str(i) for i in err.value.issues)
    assert "edgeswin.yaml" in text and "no rung has a DLA build" in text
    assert "cam.yaml:" in text and "min_fps 5 is above fps 2" in text


def test_dla_builds_are_found_by_model():
    from edgeswin.config import EngineRung

    rungs = [EngineRung(name="gpu", model=str(PRIMARY.with_suffix(".onnx")), backend="tensorrt"),
             EngineRung(name="small", model=str(SMALL)),
             EngineRung(name="dla", model=str(PRIMARY.with_suffix(".onnx")), backend="tensorrt",
                        precision="fp16", dla_core=0)]
    assert dla_twins(rungs) == {0: 2}
