"""The retained `<root>/engine`: which engine serves and why, each lever's level, and the
background builds, from a first boot's build (no engine yet, its progress also to systemd
while the ladder loads) to a stop that cancels one.

Takes what serves from its caller (`serving.Serving` once an engine serves, the daemon before
and after); hands on one retained message per call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..classify.step import iso
from ..engine.ladder import ActiveEngine, EngineLadder
from ..govern.fallback import Action, Readings
from ..process.cadence import Every
from ..process.notify import Notifier
from .message import topic_message
from .mqtt import Publisher

BUILD_PROGRESS_EVERY_S = 5.0  # a running build's step republished on <root>/engine at most this often
START_EXTENSION_S = 30.0  # each progress report before the first engine: this much more start time
WAITING = "waiting for an engine: no rung can serve until its TensorRT build finishes"


class EngineTopic:
    def __init__(self, root: str, engines: EngineLadder, publisher: Publisher):
        self.root, self.engines, self.publisher = root, engines, publisher
        self.last_reason = "start"  # why the serving engine serves, kept for the next message

    def load(self, stop: threading.Event, notifier: Notifier,
             last: Callable[[float], Readings]) -> None:
        """Open the ladder (`EngineLadder.load`). While a first boot's build runs with no rung
        to serve: the watchdog fed, and every few seconds the build's step here and to
        systemd, with more start time each time."""
        progress = Every(BUILD_PROGRESS_EVERY_S, time.monotonic())

        def waiting() -> None:
            now = time.monotonic()
            notifier.watchdog(now)
            if progress.due(now):
                self.say(None, {}, WAITING, last(now))
                notifier.extend(START_EXTENSION_S, f"{WAITING}: " + "; ".join(
                    f"{name} {r.step or r.state} ({r.as_dict().get('elapsed_s', r.seconds)} s)"
                    for name, r in self.engines.builds.items()))
                progress.done(now)

        self.engines.load(stop, waiting)

    def say(self, active: ActiveEngine | None, levels: dict[str, int], reason: str,
            readings: Readings, from_rung: int | None = None, action: Action | None = None
            ) -> None:
        """What serves and why, and the builds. Before any engine serves (a first boot's
        build) the engine's fields are null and the builds say how far they got; with neither
        an engine nor a build there is nothing to say."""
        if active is None and not self.engines.builds:
            return
        if active is not None:
            self.last_reason = reason
        payload = {
            "rung": active.rung if active else None, "from": from_rung,
            "name": active.name if active else None,
            "model": active.engine.info.name if active else None,
            "backend": active.engine.backend if active else None,
            "precision": active.engine.info.precision if active else None, "reason": reason,
            "lever": {"name": action.lever, "from": action.frm, "to": action.to}
            if action else None,
            "levels": levels, "readings": readings.as_dict(), "ts": iso(time.time())}
        if self.engines.builds:
            payload["builds"] = {name: r.as_dict() for name, r in self.engines.builds.items()}
        if skipped := self.engines.skipped():
            payload["skipped"] = skipped
        self.publisher.publish(topic_message(self.root, "engine", payload))

    def builds_stopped(self, active: ActiveEngine | None, levels: dict[str, int],
                       readings: Readings) -> None:
        """At exit, the builds cancelled: the retained message says so (a subscriber must not
        read "building" from a daemon that has stopped)."""
        if self.engines.builds:
            self.say(active, levels, self.last_reason if active else
                     "stopped before an engine served", readings)
