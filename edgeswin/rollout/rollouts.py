"""Zero-downtime model rollout: a rung whose model changed is built and opened in the
background, shadowed on live frames, promoted between two frames or rejected, watched after
promotion and rolled back automatically or by hand (`edgeswin rollback`).

The loop calls `offer()` after each classification, `shadow_idle()` when nothing is due (spare
time), `step()` between frames and `engine_failed()` when an engine raised or answered its
canary wrong. Each returns nothing the loop must know about except which rungs got another
engine: the loop then points the cameras at it (`Serving.rungs_replaced`). The rules are in
`gate`, the comparisons in `shadow`; what served before is in `store`, whose copies and built
plans no rung needs any more are deleted after each rollout. One at a time; others queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..classify.step import iso
from ..config import EngineRung, RolloutConfig
from ..engine.ladder import ActiveEngine, EngineLadder, activate, close_engine
from ..process.control import Request
from .gate import Comparison, status_payload, verdict, watch_verdict
from .rung_plan import WAY_OUT
from .served import ServedModels
from .shadow import accuracy_on, compare_on
from .store import ModelStore, StoredModel

log = logging.getLogger(__name__)


@dataclass
class Rollout:
    rung: int
    spec: EngineRung  # the rung's settings with the candidate's model
    candidate: StoredModel
    current: StoredModel | None
    purpose: str = "candidate"  # or "rollback": swapped in as soon as it is open
    state: str = "building"
    reason: str = ""
    engine: ActiveEngine | None = None
    comparison: Comparison | None = None
    accuracy: float | None = None  # on check_images, when the label sets differ
    previous: ActiveEngine | None = None  # the old engine, kept open while watched
    watch_until: float = 0.0
    watch: Comparison | None = None  # the promoted model against `previous`, while watched
    request: Request | None = None  # an `edgeswin rollback` waiting for its answer
    replacement: bool = False  # another label set named by an edited config (`rung_plan`)


class ModelRollouts:
    def __init__(self, cfg: RolloutConfig, store: ModelStore, ladder: EngineLadder,
                 latency_budget_ms: float | None, publish: Callable[[dict], None],
                 wake: threading.Condition):
        self.cfg = cfg
        self.store = store
        self.ladder = ladder
        self._latency_budget_ms = latency_budget_ms
        self._publish = publish
        self._wake = wake
        self.serving = ServedModels(store)  # rung -> the model it serves
        self.active: Rollout | None = None
        self.queue: list[Rollout] = []
        self.events: dict[str, int] = {}  # state -> how many times it was entered (metrics)
        self._opened: tuple[Rollout, object | None, str] | None = None  # from the open thread
        self._sample = None  # the latest live image (or region crop) to compare on
        self._pairs = 0  # paired timings so far: which model goes first alternates
        self._offers = 0
        self._closed = False

    def startup(self, specs: list[EngineRung]) -> list[EngineRung]:
        """The specs to load now (`ServedModels.startup`); a rung whose new file waits for
        its gate gets a rollout."""
        load, waiting = self.serving.startup(specs, self.cfg)
        for args in waiting:
            self._enqueue(*args)
        return load

    def started(self, rungs: list[ActiveEngine | None]) -> None:
        """After the ladder loaded: record what each usable rung serves, and begin a queued
        rollout."""
        for rung, active in enumerate(rungs):
            if active is not None:
                self.now_serving(rung)
        self._next()

    def now_serving(self, rung: int) -> None:
        """The rung started serving the model it was loaded with (at start, or later when
        its background build was adopted)."""
        self.serving.now_serving(rung, self.ladder.specs[rung].name)

    def reloaded(self, cfg: RolloutConfig, specs: list[EngineRung], rungs: list[int]) -> None:
        """A reload: the new rollout settings apply now; each of `rungs` (settings otherwise
        unchanged) whose model file differs from what it serves and rolls out gets a rollout."""
        self.cfg = cfg
        pending = {(r.rung, r.candidate.sha256) for r in self._all()}
        for args in self.serving.changed(specs, rungs, cfg, pending):
            self._enqueue(*args)
        self._next()

    def _all(self) -> list[Rollout]:
        return ([self.active] if self.active else []) + self.queue

    def _enqueue(self, rung: int, spec: EngineRung, model: Path, sha: str,
                 current: StoredModel | None, replacement: bool = False) -> None:
        # Superseded: a newer file for the same rung replaces one still waiting.
        self.queue = [r for r in self.queue if r.rung != rung]
        self._queue_up(Rollout(rung, spec, StoredModel(model, sha, str(model)), current,
                               replacement=replacement))

    def _queue_up(self, ro: Rollout, first: bool = False) -> None:
        """Into the queue; while another rollout runs, say so on `<root>/rollout` at once (a
        watched promotion can hold the queue for `watch_s`)."""
        self.queue.insert(0 if first else len(self.queue), ro)
        running = self.active
        if running is not None and not self._closed:
            self._enter(ro, "queued", f"waits for the rollout of rung {running.rung} "
                        f"({running.spec.name}), now {running.state}"
                        + (f" and watched for {max(running.watch_until - time.monotonic(), 0):.0f}"
                           " s more" if running.state == "promoted" else ""))

    def _next(self) -> None:
        if self.active is not None or not self.queue or self._closed:
            return
        ro = self.active = self.queue.pop(0)
        if ro.purpose == "candidate":  # a copy now: the file may be replaced again meanwhile
            kept = self.store.keep(Path(ro.candidate.path), ro.candidate.sha256)
            ro.candidate = StoredModel(kept.path, kept.sha256, ro.candidate.source)
            ro.spec = ro.spec.model_copy(update={"model": str(kept.path)})
        self._enter(ro, "building", f"opening {ro.candidate.source}" +
                    (" (a TensorRT build first where needed)" if ro.spec.backend == "tensorrt"
                     else ""))

        def done(engine, why: str) -> None:  # on the open (or build) thread
            with self._wake:
                if self._closed or self.active is not ro:
                    if engine is not None:
                        close_engine(engine)
                    return
                if engine is not None and ro.purpose == "candidate":
                    ro.accuracy = self._check_accuracy(ro, engine)
                self._opened = (ro, engine, why)
                self._wake.notify()

        self.ladder.prepare(ro.spec, done)

    def _check_accuracy(self, ro: Rollout, engine) -> float | None:
        """Top-1 on `check_images` when the candidate's labels differ from the current's
        (agreement cannot be measured then). On the open thread, before any frame waits."""
        current = self.ladder.rungs[ro.rung]
        if current is None or current.engine.info.labels == engine.info.labels \
                or not self.cfg.check_images:
            return None
        return accuracy_on(Path(self.cfg.check_images), engine)

    def _arrive(self) -> list[int]:
        with self._wake:
            opened, self._opened = self._opened, None
        if opened is None:
            return []
        ro, engine, why = opened
        if engine is None:
            self._finish(ro, "rejected", f"could not open {ro.candidate.source}: {why}")
            return []
        try:
            ro.engine = activate(ro.rung, ro.spec, engine, self.ladder.kernel_dir)
        except Exception as exc:
            close_engine(engine)
            self._finish(ro, "rejected", f"{type(exc).__name__}: {exc}")
            return []
        current = self.ladder.rungs[ro.rung]
        if ro.purpose == "rollback":
            return self._swap_back(ro, ro.engine, "rolled back by hand (edgeswin rollback)")
        if current is None:
            return self._promote(ro, "the rung had no usable model: taken without comparison")
        same = current.engine.info.labels == ro.engine.engine.info.labels
        if not same and not self.cfg.check_images:
            if ro.replacement:
                return self._promote(ro, "the config names a model with another label set: a "
                                     "replacement, taken without comparison (set "
                                     "rollout.check_images to gate it)")
            close_engine(ro.engine.engine)
            self._finish(ro, "rejected", "the label sets differ, so agreement cannot be "
                         "measured, and rollout.check_images is not set")
            return []
        ro.comparison = Comparison(same_labels=same)
        self._sample = None
        self._enter(ro, "shadow", f"comparing with the current model on live frames (at least "
                    f"{self.cfg.min_frames})")
        return []

    def offer(self, image) -> list[int]:
        """After a live classification: keep its image as the next sample to compare on; with
        no spare time for a while, compare every `shadow_every`-th one now."""
        ro = self.active
        if ro is None or ro.state not in ("shadow", "promoted") or ro.previous is None \
                and ro.state == "promoted":
            return []
        self._sample = image
        self._offers += 1
        if self._offers % self.cfg.shadow_every == 0:
            return self._compare()
        return []

    def shadow_idle(self) -> tuple[bool, list[int]]:
        """Spare time: compare on the latest sample. (whether work was done, rungs replaced)"""
        if self._sample is None or self.active is None or \
                self.active.state not in ("shadow", "promoted"):
            return False, []
        return True, self._compare()

    def _paired(self, old: ActiveEngine, new: ActiveEngine, image, cmp: Comparison) -> None:
        self._pairs += 1
        compare_on(old, new, image, cmp, old_first=bool(self._pairs % 2))

    def _compare(self) -> list[int]:
        ro, image = self.active, self._sample
        self._sample = None
        if ro is None or image is None or ro.engine is None:
            return []
        if ro.state == "promoted":
            return self._watch(ro, image)
        current = self.ladder.rungs[ro.rung]
        if current is None or ro.comparison is None:
            return []
        try:
            self._paired(current, ro.engine, image, ro.comparison)
        except Exception as exc:
            log.exception("rollout: the candidate failed on a live frame")
            close_engine(ro.engine.engine)
            self._finish(ro, "rejected", f"engine error in shadow: {type(exc).__name__}: {exc}")
            return []
        decided = verdict(ro.comparison, self.cfg, ro.accuracy)
        if decided is None:
            return []
        decision, reason = decided
        if decision == "promote":
            return self._promote(ro, reason)
        close_engine(ro.engine.engine)
        self._finish(ro, "rejected", reason)
        return []

    def _watch(self, ro: Rollout, image) -> list[int]:
        """A promoted model against the previous one, still open, on a live frame."""
        if ro.previous is None or ro.watch is None:
            return []
        try:
            self._paired(ro.previous, ro.engine, image, ro.watch)
        except Exception as exc:  # the promoted engine failing is a rollback
            return self._roll_back(ro, f"engine error: {type(exc).__name__}: {exc}")
        why = watch_verdict(ro.watch, self.cfg, self._latency_budget_ms)
        return self._roll_back(ro, why) if why else []

    def _promote(self, ro: Rollout, reason: str) -> list[int]:
        previous = self.ladder.rungs[ro.rung]
        self.ladder.rungs[ro.rung] = ro.engine
        old = self.serving.get(ro.rung)
        self.serving[ro.rung] = ro.candidate
        self.store.set_current(ro.spec.name, ro.candidate, self.store.stored(
            old.as_dict() if old else None))
        ro.previous, ro.current = previous, old
        if previous is not None and self.cfg.watch_s > 0:
            ro.watch = Comparison(previous.engine.info.labels == ro.engine.engine.info.labels)
            ro.watch_until = time.monotonic() + self.cfg.watch_s
            budget = self._latency_budget_ms
            self._enter(ro, "promoted", f"{reason}; watched for {self.cfg.watch_s:g} s against "
                        f"the previous model on the same frames (rollback when proven over "
                        f"{self.cfg.max_latency_ratio:g}x its time"
                        + (f" or over the {budget:g} ms p95 budget that it meets" if budget
                           else "") + ", or on an engine error)")
        else:
            if previous is not None:
                close_engine(previous.engine)
            self._finish(ro, "promoted", reason)
        return [ro.rung]

    def step(self, now: float) -> list[int]:
        """Between frames: adopt an opened engine; end a watch that ran its time (its
        latency is judged on each compared frame, in `_watch`)."""
        replaced = self._arrive()
        ro = self.active
        if ro is not None and ro.state == "promoted":
            if now >= ro.watch_until:
                close_engine(ro.previous.engine)
                ro.previous = None
                self._finish(ro, "promoted", f"watched {self.cfg.watch_s:g} s without a "
                             "problem; the previous model is kept on disk for edgeswin rollback")
        return replaced

    def engine_failed(self, rung: int, why: str) -> list[int]:
        """An engine raised on a live frame, or answered its canary wrong. A promotion still
        watched is rolled back (a frame that raised is lost); anything else is not ours to
        handle (empty list)."""
        ro = self.active
        if ro is None or ro.state != "promoted" or ro.rung != rung:
            return []
        return self._roll_back(ro, why)

    def _roll_back(self, ro: Rollout, why: str) -> list[int]:
        failed = self.ladder.rungs[ro.rung]
        self.ladder.rungs[ro.rung] = ro.previous
        if failed is not None:
            close_engine(failed.engine)
        self.serving[ro.rung] = ro.current
        if ro.current is not None:
            self.store.set_current(ro.spec.name, ro.current, None)
        self.store.refuse(ro.spec.name, ro.candidate, f"rolled back: {why}")
        ro.previous = None
        self._finish(ro, "rolled_back", why)
        return [ro.rung]

    def rollback_by_hand(self, request: Request) -> list[int]:
        """`edgeswin rollback [--rung N]`: a rollout still building or in shadow on that rung
        is cancelled (the serving model stays); a watched promotion is undone at once (the
        rung is returned); otherwise the rung's previous model is opened first and the
        request answered when it serves. A rollback asked for while another rung's rollout
        runs waits its turn."""
        rung = request.args.get("rung")
        if rung is None:
            rung = self.active.rung if self.active else 0
        if not isinstance(rung, int) or not 0 <= rung < len(self.ladder.specs):
            request.reply(False, f"no engine rung {rung!r} (the ladder has "
                          f"{len(self.ladder.specs)})")
            return []
        name = self.ladder.specs[rung].name
        ro = self.active
        if ro is not None and ro.rung == rung and ro.state == "promoted":
            model = ro.current
            replaced = self._roll_back(ro, "rolled back by hand (edgeswin rollback)")
            request.reply(True, f"rung {rung} ({name}) serves {model.describe()} again")
            return replaced
        if ro is not None and ro.rung == rung and ro.purpose == "candidate":
            # Nothing was promoted yet: going back means keeping what serves.
            if ro.engine is not None:
                close_engine(ro.engine.engine)
            self._finish(ro, "rejected", "cancelled by edgeswin rollback")
            serving = self.serving.get(rung)
            request.reply(True, f"rung {rung} ({name}): the rollout of {ro.candidate.source} "
                          f"is cancelled; {serving.source if serving else 'nothing'} serves on")
            return []
        previous = self.store.stored(self.store.record.get(name, {}).get("previous"))
        if previous is None:
            request.reply(False, f"rung {rung} ({name}) has no previous model kept in "
                          f"{self.store.dir}")
            return []
        self._queue_up(Rollout(rung, self.ladder.specs[rung].model_copy(
            update={"model": str(previous.path)}), previous, self.serving.get(rung),
            purpose="rollback", request=request), first=True)
        self._next()
        return []

    def _swap_back(self, ro: Rollout, engine: ActiveEngine, why: str) -> list[int]:
        old = self.ladder.rungs[ro.rung]
        self.ladder.rungs[ro.rung] = engine
        if old is not None:
            close_engine(old.engine)
        bad = ro.current
        self.serving[ro.rung] = ro.candidate
        self.store.set_current(ro.spec.name, ro.candidate, None)
        if bad is not None:
            self.store.refuse(ro.spec.name, bad, why)
        ro.candidate, ro.current = bad, ro.candidate  # as the schema reads them afterwards
        self._finish(ro, "rolled_back", why)
        return [ro.rung]

    def _enter(self, ro: Rollout, state: str, reason: str) -> None:
        ro.state, ro.reason = state, reason
        self.events[state] = self.events.get(state, 0) + 1
        level = logging.WARNING if state in ("rejected", "rolled_back") else logging.INFO
        # A refused file is not tried again until it changes: the log says how to get past it.
        way_out = f" ({WAY_OUT})" if state == "rejected" and ro.purpose == "candidate" else ""
        log.log(level, "rollout of rung %d (%s): %s: %s%s", ro.rung, ro.spec.name, state, reason,
                way_out, extra={"ENGINE": ro.spec.name})
        self._publish(self.payload(ro))

    def _finish(self, ro: Rollout, state: str, reason: str) -> None:
        if state == "rejected" and ro.purpose == "candidate":
            self.store.refuse(ro.spec.name, ro.candidate, reason)
        self._enter(ro, state, reason)
        if ro.request is not None:
            ro.request.reply(state == "rolled_back", f"rung {ro.rung}: {state}: {reason}")
            ro.request = None
        if self.active is ro:
            self.active = None
            self._sample = None
            self.store.prune({r.candidate.sha256 for r in self.queue})
            self.ladder.prune_plans(self.store.models_kept(
                self.ladder.specs, [(r.spec.name, r.candidate) for r in self.queue]))
        self._next()

    def payload(self, ro: Rollout) -> dict:
        return status_payload(ro.rung, ro.spec.name, ro.state,
                              ro.candidate.as_dict() if ro.candidate else None,
                              ro.current.as_dict() if ro.current else None,
                              ro.comparison, ro.reason, iso(time.time()),
                              [{"rung": q.rung, "name": q.spec.name,
                                "candidate": q.candidate.as_dict() if q.candidate else None}
                               for q in self.queue if q is not ro])

    def close(self) -> None:
        """At exit, on the loop thread: free the candidate's and a watched previous engine."""
        with self._wake:
            self._closed = True
            opened, self._opened = self._opened, None
        if opened is not None and opened[1] is not None:
            close_engine(opened[1])
        ro = self.active
        if ro is not None:
            if ro.state == "shadow" and ro.engine is not None:
                close_engine(ro.engine.engine)
            if ro.previous is not None:
                close_engine(ro.previous.engine)
            if ro.request is not None:
                ro.request.reply(False, "the daemon is stopping")
