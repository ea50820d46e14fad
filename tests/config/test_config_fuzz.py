"""Property: whatever YAML a user writes, loading a config directory gives a Config or a
ConfigError whose every line names a file and a line — never any other exception."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeswin.config import load_config
from edgeswin.errors import ConfigError
from tests.harness import SMALL

DEVICE_KEYS = ["device_id", "mqtt", "engines", "state_dir", "stats_interval_s", "fallback",
               "metrics", "homeassistant", "host", "port", "qos", "name", "model", "backend",
               "threads", "precision", "preprocess", "zones", "degrade_above_c",
               "recover_below_c", "pinned_rung", "enabled", "bogus"]
CAMERA_KEYS = ["name", "source", "enabled", "fps", "loop", "realtime", "stall_s", "reconnect",
               "initial_s", "max_s", "topk", "threshold", "smoothing", "window", "publish",
               "mode", "interval_s", "latency_budget_ms", "bogus"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from([str(SMALL), "rtsp://h/x", "gst: x ! appsink", "0",
                                     "/dev/video0", "every", "auto", "tensorrt", "fp16"]))


def trees(keys):
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(keys), inner, max_size=5)), max_leaves=12)


def documents(keys):
    good_ish = st.fixed_dictionaries({}, optional={k: trees(keys) for k in keys[:8]})
    return st.one_of(good_ish, trees(keys))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(device=documents(DEVICE_KEYS), cameras=st.lists(documents(CAMERA_KEYS), max_size=3),
       raw=st.one_of(st.none(), st.text(max_size=40)))
def test_any_yaml_gives_a_config_or_located_errors(device, cameras, raw):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "cameras").mkdir()
        (root / "edgeswin.yaml").write_text(yaml.safe_dump(device))
        for i, camera in enumerate(cameras):
            (root / "cameras" / f"c{i}.yaml").write_text(yaml.safe_dump(camera))
        if raw is not None:  # and one file of arbitrary text, often not YAML at all
            (root / "cameras" / "raw.yaml").write_text(raw)
        try:
            load_config(root)
        except ConfigError as exc:
            assert exc.issues
            for issue in exc.issues:
                # a line of the file, or 0 for a folder or file as a whole (no key then)
                assert issue.file.startswith(tmp) and (issue.line >= 1 or not issue.path), issue
                where = f"{issue.file}:{issue.line}: " if issue.line else f"{issue.file}: "
                assert str(issue).startswith(where)
