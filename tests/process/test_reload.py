"""SIGHUP reloads that change cameras, against a real daemon: the camera's retained availability
ends `online` (a retired capture never speaks for it), and a hundred reloads leave resident
memory, threads and file descriptors flat."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from tests.harness import Subscriber, write_config

pytestmark = pytest.mark.mqtt
ROOT = "edgeswin/testdev"


def reload_with(cfg: Path, daemon, name: str, camera: dict, count: int) -> None:
    """Rewrite one camera file, SIGHUP, and wait until the daemon has applied reload `count`."""
    (cfg / "cameras" / f"{name}.yaml").write_text(yaml.safe_dump(camera))
    daemon.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while daemon.log().count(f"reload: camera {name} changed") < count:
        assert time.monotonic() < deadline, daemon.log()[-2000:]
        time.sleep(0.02)


def process_figures(pid: int) -> tuple[float, int, int]:
    """(resident MiB, threads, open fds) from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd"))


def test_a_changed_camera_stays_available_after_each_reload(tmp_path, broker, videos,
                                                            daemon_factory):
    import numpy as np

    from tests.streams import MjpegCamera
    # An MJPEG camera at 2 fps: its retired capture sits in a read for up to half a second,
    # long after the new capture has said "online".
    ip = MjpegCamera([np.full((240, 320, 3), v, np.uint8) for v in (40, 200)], fps=2,
                     stall=False).__enter__()
    cameras = {f"cam{i}": {"source": str(videos["north" if i % 2 else "south"]), "loop": True,
                           "fps": 5} for i in range(3)}
    cameras["ip"] = {"source": ip.url, "fps": 0, "open_timeout_s": 2, "read_timeout_s": 2}
    cfg = write_config(tmp_path / "cfg", broker.port, cameras)
    daemon = daemon_factory(cfg)
    sub = Subscriber(broker.port)
    topics = [f"{ROOT}/{name}/availability" for name in cameras]
    assert sub.wait_for(lambda: all(sub.on(t)[-1:] == [b"online"] for t in topics), 30), \
        daemon.log()
    said = {}
    for i in range(1, 6):
        for name, camera in cameras.items():
            camera["stall_s"] = 10 + i % 2
            said[name] = len(sub.on(f"{ROOT}/{name}/availability"))
            reload_with(cfg, daemon, name, camera, i)
    # Every camera's last capture has said "online" (its first frame; on a busy machine that
    # can take longer than the pause below), so the late subscriber sees no live "online".
    assert sub.wait_for(lambda: all(len(sub.on(f"{ROOT}/{name}/availability")) > n
                                    for name, n in said.items()), 20), daemon.log()
    time.sleep(2)  # any late "offline" from a retired capture would have arrived by now
    late = Subscriber(broker.port)  # what Home Assistant sees when it (re)connects: retained
    assert late.wait_for(lambda: all(late.on(t) for t in topics), 10)
    assert {t: late.on(t) for t in topics} == {t: [b"online"] for t in topics}
    assert all(sub.on(t)[-1] == b"online" for t in topics)
    assert daemon.terminate(timeout=10)[0] == 0
    sub.close()
    late.close()
    ip.__exit__(None, None, None)


def test_a_hundred_camera_reloads_leave_memory_threads_and_fds_flat(tmp_path, broker, videos,
                                                                   daemon_factory):
    camera = {"source": str(videos["north"]), "loop": True, "fps": 5}
    cfg = write_config(tmp_path / "cfg", broker.port, {"north": camera})
    daemon = daemon_factory(cfg)
    sub = Subscriber(broker.port)
    assert sub.wait_for(lambda: sub.on(f"{ROOT}/north/classification"), 30), daemon.log()
    figures = []
    for i in range(1, 101):
        camera["fps"] = 5 + i % 2
        reload_with(cfg, daemon, "north", camera, i)
        if i in (10, 100):
            time.sleep(1.0)  # the last retired capture ends and is let go
            figures.append(process_figures(daemon.proc.pid))
    (rss10, threads10, fds10), (rss100, threads100, fds100) = figures
    print(f"after 10 reloads: {rss10:.1f} MiB, {threads10} threads, {fds10} fds; "
          f"after 100: {rss100:.1f} MiB, {threads100} threads, {fds100} fds")
    assert threads100 <= threads10 + 1 and fds100 <= fds10 + 1
    assert rss100 - rss10 < 20, f"{rss100 - rss10:.1f} MiB more over 90 reloads"
    assert sub.wait_for(lambda: len(sub.on(f"{ROOT}/north/classification")) > 5, 10)
    assert daemon.terminate(timeout=10)[0] == 0
    sub.close()


def test_a_reload_plan_keeps_what_is_unchanged_and_restarts_what_changed(tmp_path, videos):
    """reload.plan_reload is pure: the same camera files keep their cameras running; a
    changed, added, removed or disabled one is sorted into start and stop, and a changed
    camera's regions keep their seq when they keep their name."""
    from types import SimpleNamespace

    from edgeswin.classify.schedule import region_runtimes
    from edgeswin.classify.stats import CameraStats
    from edgeswin.config import load_config
    from edgeswin.process.reload import carry_counters, plan_reload

    def camera(source, **extra):
        return {"source": str(source), "fps": 2, **extra}

    regions = {"regions": [{"name": "a", "box": [0, 0, 0.5, 1]},
                           {"name": "b", "box": [0.5, 0, 1, 1]}]}
    cfg = write_config(tmp_path / "cfg", 1883, {
        "same": camera(videos["north"]), "changed": camera(videos["south"], **regions),
        "gone": camera(videos["north"]), "off": camera(videos["north"])})
    before = load_config(cfg)
    running = [SimpleNamespace(name=e.config.name, entry=e,
                               regions=region_runtimes(e.config, ("x",), CameraStats()))
               for e in before.cameras]
    for region in running[[r.name for r in running].index("changed")].regions:
        region.seq = 41
    (cfg / "cameras" / "gone.yaml").unlink()
    (cfg / "cameras" / "off.yaml").write_text(yaml.safe_dump(camera(videos["north"],
                                                                    enabled=False)))
    (cfg / "cameras" / "changed.yaml").write_text(yaml.safe_dump(camera(
        videos["south"], regions=[regions["regions"][0], {"name": "c", "box": [0, 0, 1, 1]}])))
    (cfg / "cameras" / "new.yaml").write_text(yaml.safe_dump(camera(videos["south"])))
    plan = plan_reload(running, before, load_config(cfg))
    assert [c.name for c in plan.keep] == ["same"]
    assert sorted(c.name for c in plan.stop) == ["changed", "gone", "off"]
    assert sorted(plan.removed) == ["gone", "off"]
    assert sorted(e.config.name for e, _ in plan.start) == ["changed", "new"]
    assert plan.restart == [] and plan.model_rungs == [0, 1]
    entry, old = next((e, o) for e, o in plan.start if e.config.name == "changed")
    fresh = SimpleNamespace(regions=region_runtimes(entry.config, ("x",), CameraStats()))
    carry_counters(old, fresh)
    assert {r.name: r.seq for r in fresh.regions} == {"a": 41, "c": 0}
