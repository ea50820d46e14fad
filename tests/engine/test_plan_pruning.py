"""A model updated every week must not leave a TensorRT plan a week for good: after a rollout,
plans of models no rung serves or could roll back to are deleted, and so are plans another
TensorRT release built; the plans of what serves, what it rolls back to and the candidates
waiting stay (the TensorRT double builds them)."""

from __future__ import annotations

import threading

from edgeswin.config import EngineRung
from edgeswin.engine.build import build_engine
from edgeswin.engine.ladder import EngineLadder
from edgeswin.rollout.store import ModelStore, sha256_of
from tests.harness import copy_primary
from tests.model_variants import reexported


def test_plans_of_models_nothing_needs_any_more_are_deleted(tmp_path, trt):
    configured = copy_primary(tmp_path)
    state = tmp_path / "state"
    spec = EngineRung(name="primary", model=str(configured), backend="tensorrt",
                      precision="fp16")
    ladder = EngineLadder([spec], state, lambda: [], threading.Condition())
    store = ModelStore(state)
    weeks = [reexported(configured, tmp_path / f"week{i}.onnx", f"swin-demo-112-w{i}")
             for i in range(4)]
    plans = {}
    previous = None
    for model in [configured, *weeks]:  # a year in miniature: each served in turn
        plans[model] = ladder.cache.plan_path(model, "fp16")
        build_engine(model, plans[model], "fp16")
        kept = store.keep(model, sha256_of(model))
        store.set_current("primary", kept, previous)
        previous = kept
    stale = state / "engines" / "swin-demo-112-fp16-another-release.engine"  # before an upgrade
    stale.write_bytes(b"plan")
    stale.with_suffix(".json").write_text("{}")
    timing = state / "engines" / "timing-10.3.0.30-orin-sm87.cache"
    timing.write_bytes(b"timings")
    waiting = reexported(configured, tmp_path / "next.onnx", "swin-demo-112-next")
    plans[waiting] = ladder.cache.plan_path(waiting, "fp16")
    build_engine(waiting, plans[waiting], "fp16")

    ladder.prune_plans(store.models_kept([spec], [("primary", store.keep(
        waiting, sha256_of(waiting)))]))
    left = sorted(p.name for p in (state / "engines").glob("*.engine"))
    # What serves and what it rolls back to are the stored copies of the last two weeks: the
    # same bytes, so the same plans; the configured file's and the waiting candidate's stay.
    assert left == sorted({plans[m].name for m in (configured, weeks[-1], weeks[-2], waiting)}), \
        left
    assert not stale.exists() and not stale.with_suffix(".json").exists()
    assert all(p.with_suffix(".json").exists() for p in (state / "engines").glob("*.engine"))
    assert timing.read_bytes() == b"timings", "the timing cache stays"
