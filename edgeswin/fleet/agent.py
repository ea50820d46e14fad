"""The device side of a fleet, in the daemon: bundles from `edgeswin/fleet/<group>/desired` and
`<root>/desired` (a device's own wins over its group's while it is there), taken between two
frames.

Each bundle is checked (`policy`), staged and validated as `edgeswin check` would
(`load_config` with it laid over the local directory), then taken: it becomes the applied
overlay and the daemon reloads (cameras, rollout settings and models now; other settings by a
restart, asked of the service manager with exit status 75). For `revert_after_s` the new state is
watched against the one before: a camera that delivered and is now offline, a canary that
passed and now fails, a model rollout rolled back, or a health problem that was not there
reverts to the last good overlay.

A bundle that names models is fetched first (`download`, on a thread; state `downloading`),
each rung's model then replaced in the engines section, and taken like any other: the daemon's
model rollout gates each new model in shadow before it serves.

Hands on the retained `<root>/reported`: `{"version", "state", "reason", "config_sha256",
"models", "group", "ring", "ts"}` with state `downloading`, `refused`, `rolling_out`, `applied`
or `rolled_back`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..classify.step import iso
from ..config import DeviceConfig, load_config
from ..errors import ConfigError
from ..topics import at, group_desired
from .bundle import MAX_BUNDLE, trusted_keys
from .download import DownloadError, fetch
from .overlay import FleetFiles, config_sha256
from .policy import refusal

log = logging.getLogger(__name__)

RESTART_EXIT = 75  # EX_TEMPFAIL: the unit's RestartForceExitStatus restarts the daemon


@dataclass
class _Watch:
    since: float
    before: dict  # `observe()` just before the bundle was taken


class FleetAgent:
    def __init__(self, device: DeviceConfig, root: str, directory: Path,
                 publish: Callable[[dict], None], follow: Callable, wake: Callable[[], None]):
        self.cfg, self.root, self.directory = device.fleet, root, directory
        self.mqtt = device.mqtt  # models sent as chunks come through the broker too
        self.files = FleetFiles(Path(device.state_dir))
        self.publish, self.wake = publish, wake
        self.topics = {"device": at(root, "desired")}
        if self.cfg.group:
            self.topics["group"] = group_desired(self.cfg.group)
        self._pending: dict[str, bytes] = {}
        self._latest: dict[str, bytes] = {}  # the last retained payload per source
        self._heard: set[str] = set()  # sources a bundle came from since the start
        self._lock = threading.Lock()
        self._watch: _Watch | None = None
        self._fetching: threading.Thread | None = None
        self._fetched: tuple | None = None
        self.state = self.files.state()
        self.restart_reason: str | None = None
        for source, topic in self.topics.items():
            follow(topic, lambda _t, payload, s=source: self._arrived(s, payload))
        keys, bad = trusted_keys(Path(self.cfg.trusted_keys) if self.cfg.trusted_keys else None)
        self.keys = keys
        for problem in bad:
            log.warning("fleet: trusted key left out: %s", problem)
        if not keys:
            log.warning("fleet: no trusted key in %s: every bundle will be refused",
                        self.cfg.trusted_keys)

    def started(self) -> None:
        """After a start: say what is applied (a restart asked to apply a bundle finishes it)."""
        if self.state.get("state") == "rolling_out" and "before" in self.state:
            # Restarted to apply it: watched from now against the state before the restart
            # (model rollouts counted afresh in this run).
            before = {**self.state.pop("before"), "rollbacks": 0}
            self._watch = _Watch(time.monotonic(), before)
            self._say("rolling_out", f"restarted to apply it; watched for "
                      f"{self.cfg.revert_after_s:g} s")
        elif self.state.get("state") == "rolling_out":
            self._say("applied", "applied at the restart it needed")
        elif self.state.get("state") in ("applied", "rolled_back"):
            self._say_again()
        elif self.state.get("version"):  # a refusal since: what serves is the applied one
            self._say("applied", f"serving version {self.state['version']}")

    def _arrived(self, source: str, payload: bytes) -> None:  # paho's thread
        with self._lock:
            self._pending[source] = payload
        self.wake()

    def step(self, now: float, reload: Callable[[], list[str] | None],
             observe: Callable[[], dict]) -> None:
        """Between two frames: watch a new state, then take what arrived."""
        if self._watch is not None:
            worse = self._worse(self._watch.before, observe())
            if worse:
                self._revert(worse, reload)
            elif now - self._watch.since >= self.cfg.revert_after_s:
                self._watch = None
                self._say("applied", f"watched {self.cfg.revert_after_s:g} s: no camera, "
                          "canary or health check got worse")
        if self._fetching is not None:
            if self._fetching.is_alive():
                return  # what arrives meanwhile waits for the models being fetched
            source, bundle, fetched = self._fetched
            self._fetching = self._fetched = None
            if isinstance(fetched, str):
                self._refuse(bundle["version"], fetched, source)
            else:
                self._take(source, bundle, now, reload, observe, fetched)
        with self._lock:
            pending, self._pending = self._pending, {}
        for source in ("group", "device"):  # the device's own last: it wins
            if source in pending:
                self._latest[source] = pending[source]
                self._consider(source, pending[source], now, reload, observe)

    def _consider(self, source: str, payload: bytes, now: float, reload, observe) -> None:
        first = source not in self._heard
        self._heard.add(source)
        if source == "group" and self._latest.get("device"):
            return  # a bundle for this device alone is in force
        if not payload:
            if source == "device" and self._latest.get("group"):  # back to the group's
                self._consider("group", self._latest["group"], now, reload, observe)
            return
        if len(payload) > MAX_BUNDLE:
            return self._refuse(None, f"bundle of {len(payload):,} bytes (at most "
                                f"{MAX_BUNDLE:,})", source)
        try:
            bundle = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            return self._refuse(None, f"not JSON: {exc}", source)
        if isinstance(bundle, dict) and bundle.get("ring") == "canary" and \
                self.cfg.ring != "canary":
            return  # for the canary ring first; this device takes it once promoted
        versions = self.state.get("versions", {})
        why, signed = refusal(bundle, self.cfg, versions.get(source), self.keys)
        version = bundle.get("version") if signed else None
        if why:
            if signed and version == versions.get(source) and (
                    config_sha256(bundle) == self.state.get("config_sha256")
                    or self.state.get("said_version") == version):
                return self._again(source, version, first)
            return self._refuse(version, why, source,
                                shown=bundle.get("version") if isinstance(bundle, dict) else None)
        if bundle.get("models"):  # fetched on a thread; taken by the step after
            self._fetching = threading.Thread(target=self._fetch, args=(source, bundle),
                                              name="fleet-fetch", daemon=True)
            self._fetching.start()
            self._say("downloading", f"{len(bundle['models'])} model(s)", version)
            return
        self._take(source, bundle, now, reload, observe, {})

    def _fetch(self, source: str, bundle: dict) -> None:
        """Each model the bundle names, checked (the fleet-fetch thread)."""
        try:
            paths = {m["rung"]: fetch(m, self.files.dir / "models", self.mqtt)
                     for m in bundle["models"]}
            self._fetched = (source, bundle, paths)
        except DownloadError as exc:
            self._fetched = (source, bundle, f"model download: {exc}")
        except OSError as exc:
            self._fetched = (source, bundle, f"model download: {exc.strerror or exc}")
        except Exception as exc:  # a URL urllib cannot take: refused, never the daemon down
            self._fetched = (source, bundle, f"model download: {type(exc).__name__}: {exc}")
        self.wake()

    def _take(self, source: str, bundle: dict, now: float, reload, observe,
              models: dict[int, Path]) -> None:
        version, versions = bundle["version"], self.state.get("versions", {})
        try:
            staged = self.files.stage(self._with_models(bundle, models) if models else bundle)
            load_config(self.directory, overlay=staged)
        except ConfigError as exc:
            return self._refuse(version, "the config it makes is invalid: " +
                                "; ".join(str(i) for i in exc.issues[:3]), source)
        except ValueError as exc:
            return self._refuse(version, str(exc), source)
        before = observe()
        self.files.take()
        self.state.update(versions={**versions, source: version}, version=version,
                          source=source, config_sha256=config_sha256(bundle),
                          models={str(m["rung"]): m["sha256"] for m in bundle.get("models", [])},
                          good=[self.state.get("version"), self.state.get("config_sha256")])
        restart = reload()
        if restart is None:  # cannot happen after validation; said and reverted all the same
            return self._revert("the reload rejected it", reload)
        if restart:
            self.restart_reason = f"fleet: restarting to apply version {version} " \
                                  f"({', '.join(restart)})"
            self.state["before"] = before  # the watch goes on after the restart
            self._say("rolling_out", self.restart_reason)
            return
        self._watch = _Watch(now, before)
        self._say("rolling_out", f"applied; watched for {self.cfg.revert_after_s:g} s")

    def _with_models(self, bundle: dict, models: dict[int, Path]) -> dict:
        """The bundle with its fetched models in the engines section (the bundle's own, else
        the device's): each rung's model is the file fetched for it."""
        config = dict(bundle.get("config") or {})
        engines = config.get("engines")
        if engines is None:
            engines = [e.model_dump(mode="json", exclude_none=True)
                       for e in load_config(self.directory).device.engines]
        engines = [dict(e) for e in engines]
        for rung, path in models.items():
            if rung >= len(engines):
                raise ValueError(f"models: rung {rung}, and the device has {len(engines)} "
                                 "rung(s)")
            engines[rung]["model"] = str(path)
        return {**bundle, "config": {**config, "engines": engines}}

    def _again(self, source: str, version: int, first: bool) -> None:
        """The same bundle again: its retained copy after a reconnect or a restart, also of
        one rolled back or refused. Nothing changes. After a start `started` has said the
        report; after a reconnect (the device's or a bridge's on the way) it is said again,
        since that reconnect may have lost it (a bridge's queue gone, a central broker restored
        from an older file)."""
        if first or not self.state.get("state"):
            return
        log.info("fleet: version %s again on %s (a reconnect's retained copy): reported again",
                 version, self.topics[source])
        self._say_again()

    def _say_again(self) -> None:
        """The last report, as it stands."""
        self._say(self.state["state"], self.state.get("reason", ""),
                  self.state.get("said_version"))

    def _refuse(self, version: int | None, why: str, source: str, shown=None) -> None:
        """`version`: a signed bundle's, never considered again; `shown`: the version the
        bundle claims, reported either way."""
        shown = version if shown is None else shown
        log.error("fleet: refused a bundle from %s (version %s): %s", self.topics[source],
                  shown, why)
        if version is not None:
            self.state.setdefault("versions", {})[source] = max(
                version, self.state.get("versions", {}).get(source) or 0)
        self._say("refused", why, shown if isinstance(shown, int) else None)

    def _revert(self, why: str, reload) -> None:
        log.error("fleet: version %s made things worse (%s): back to the last good config",
                  self.state.get("version"), why)
        self.files.revert()
        self._watch = None
        restart = reload()
        bad = self.state.get("version")
        if restart:  # going back changes settings a reload cannot apply either
            self.restart_reason = f"fleet: restarting to go back from version {bad} " \
                                  f"({', '.join(restart)})"
        self.state["version"], self.state["config_sha256"] = self.state.get("good", [None] * 2)
        self._say("rolled_back", f"{why}; serving version "
                  f"{self.state['version'] or '(local files)'} again", bad)

    def _worse(self, before: dict, now: dict) -> str | None:
        for name, state in sorted(before["cameras"].items()):
            if state == "online" and now["cameras"].get(name) == "offline":
                return f"camera {name} delivered before and is offline now"
        if before["canary_ok"] is not False and now["canary_ok"] is False:
            return "the canary fails"
        if now["rollbacks"] > before["rollbacks"]:
            return "a model rollout was rolled back"
        for name, kinds in sorted(now["problems"].items()):
            new = sorted(set(kinds) - set(before["problems"].get(name, ())))
            if new:
                return f"camera {name}: {', '.join(new)}"
        return None

    def _say(self, state: str, reason: str, version: int | None = None) -> None:
        self.state.update(state=state, reason=reason, said_version=version)
        # A refused or rolled-back bundle's own version; otherwise the one in force.
        payload_version = version if version is not None else self.state.get("version")
        self.files.save_state(self.state)
        log.info("fleet: %s: version %s: %s", state, payload_version, reason)
        self.publish({"version": payload_version, "state": state, "reason": reason,
                      "config_sha256": self.state.get("config_sha256"),
                      "models": self.state.get("models", {}),
                      "group": self.cfg.group, "ring": self.cfg.ring, "ts": iso(time.time())})


def observe(cameras, serving, problems: dict[str, dict[str, bool]]) -> dict:
    """What the watch compares: each camera's state, the canary, model rollouts rolled back,
    each camera's problems."""
    last = serving.canary_last
    return {"cameras": {c.name: c.capture.state for c in cameras},
            "canary_ok": None if last is None else last.ok, "rollbacks": serving.rollbacks,
            "problems": {name: [k for k, on in kinds.items() if on]
                         for name, kinds in problems.items()}}
