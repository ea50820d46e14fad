"""Stage 1: capture. One thread per camera reads frames with OpenCV and keeps only the newest.

Hands on `Frame`s through `Capture.latest()`; no queue, so a slow engine never makes the
stream drift behind. Reconnects with capped exponential backoff after a failed open, a read
error or a stall; reports availability changes through a callback. Files can be paced at
their own frame rate (like a live camera) and looped.

A network read that never returns is left behind: OpenCV 4.6's GStreamer backend waits for
the next sample without limit, and now and then an rtspsrc whose server died posts an error
rather than the end of stream (a camera restarted under load met it), so that wait never ends.
Once a stalled camera's read has waited `stall_s + read_timeout_s + GRACE_S`, a new reader
thread opens the camera again; the old one releases its capture and ends silently should its
read ever come back. At most `MAX_STUCK` such reads per camera are left waiting.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import cv2
import numpy as np

from ..config import CameraConfig, SourceSpec, opencv_has_gstreamer
from ..config.credentials import read_secret, with_credentials
from ..errors import EdgeswinError
from ..records import Frame
from .gst_pipeline import DECODE_WIDTH, flavour, rtsp_pipeline
from .stream_open import GRACE_S, MAX_STUCK, Opener, Unreachable, unreachable

# What a capture is doing (stats' `cameras.<name>.state`; availability is `online` or not).
STATES = ("connecting", "online", "offline", "ended")

log = logging.getLogger(__name__)

# (camera, "online" | "offline" | "ended", reason)
AvailabilityCallback = Callable[[str, str, str], None]


REUSE_FRAMES = 4  # a capture's frames kept to decode into again once nothing holds them


def _unused(frames: list[np.ndarray]) -> np.ndarray | None:
    """A frame of this capture that nothing else refers to any more (no Frame, crop, queue or
    snapshot), to decode the next one into: a decoded frame is then neither allocated nor
    faulted in anew (25 MB at 4K), and the heap does not fragment as cameras come and go.
    None when every one is still in use (OpenCV then allocates one)."""
    for frame in frames:
        # The list, the loop variable and getrefcount's own argument: nobody else.
        if sys.getrefcount(frame) <= 3:
            return frame
    return None


def open_capture(source: SourceSpec, cfg: CameraConfig,
                 width: int = DECODE_WIDTH) -> tuple[cv2.VideoCapture, str]:
    """Open a source with the backend that fits it; the caller checks isOpened(). Returns the
    capture and the decoder used. An rtsp:// camera decodes through GStreamer, scaled to at
    most `width`, on a Jetson (`decoder: auto`: NVDEC and the VIC) or wherever GStreamer can
    when forced (`decoder: gstreamer`); FFmpeg otherwise, or when an auto pipeline does not
    open."""
    timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(cfg.open_timeout_s * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(cfg.read_timeout_s * 1000)]
    if source.kind == "stream":
        url = str(source.target)
        if why := unreachable(url, cfg.open_timeout_s):
            raise Unreachable(why)
        user = password = None
        if cfg.credentials is not None:  # built here only, never logged
            c = cfg.credentials
            user, password = c.username, read_secret(
                f"camera {cfg.name} credentials", c.password_file, c.password_env, c.credential)
        if urlsplit(url).scheme in ("rtsp", "rtsps") and cfg.decoder != "ffmpeg":
            kind = flavour() if opencv_has_gstreamer() else None
            if kind is None and cfg.decoder == "gstreamer":
                raise EdgeswinError(f"camera {cfg.name}: decoder: gstreamer, but this OpenCV "
                                    f"has no GStreamer, or GStreamer lacks rtspsrc, decodebin "
                                    f"or an H.264 decoder (gst-inspect-1.0 avdec_h264)")
            if kind == "jetson" or (kind is not None and cfg.decoder == "gstreamer"):
                cap = cv2.VideoCapture(rtsp_pipeline(url, width, kind, cfg.read_timeout_s, user,
                                                     password), cv2.CAP_GSTREAMER)
                if cap.isOpened() or cfg.decoder == "gstreamer":
                    return cap, f"GStreamer ({kind} decode, scaled to at most {width} px wide)"
                cap.release()  # auto: FFmpeg decodes this time
        if user is not None:
            url = with_credentials(url, user, password)
        # Timeouts only take effect when passed at open (cap.set afterwards is ignored).
        return cv2.VideoCapture(url, cv2.CAP_FFMPEG, timeouts), "FFmpeg"
    if source.kind == "gstreamer":
        return cv2.VideoCapture(str(source.target), cv2.CAP_GSTREAMER), "GStreamer (gst: source)"
    if source.kind == "v4l2":
        return cv2.VideoCapture(source.target, cv2.CAP_V4L2), "V4L2"
    return cv2.VideoCapture(str(source.target), cv2.CAP_FFMPEG), "FFmpeg"


class Capture:
    """A camera's capture thread and its newest frame."""

    def __init__(self, cfg: CameraConfig, source: SourceSpec, on_frame: Callable[[], None],
                 on_availability: AvailabilityCallback):
        self.cfg = cfg
        self.name = cfg.name
        self.source = source
        self._on_frame = on_frame
        self._on_availability = on_availability
        self._lock = threading.Lock()
        self._latest: Frame | None = None
        self._seq = 0
        self._stop = threading.Event()
        self._state_lock = threading.Lock()
        self._retired = False
        self._reconnect = threading.Event()
        self._thread = self._reader()
        self._left_behind: set[threading.Thread] = set()  # readers replaced while reading
        self._reading_since: float | None = None  # when the current reader's read began
        self._told_hung = False
        self.state = "connecting"  # one of STATES
        self._journal = {"CAMERA": self.name}  # a journal field: journalctl CAMERA=<name>
        self.frames_read = 0
        self.reconnects = 0
        self.failures = 0
        self.last_frame_mono = time.monotonic()
        # Files with realtime: false hand on every frame at the pace the engine takes them:
        # the next frame is decoded only once the pipeline took this one (nothing is lost by
        # waiting on a file, and decoding frames nobody classifies steals the engine's CPU).
        self._taken = threading.Event()
        self._taken.set()
        self._paced_by_consumer = source.kind == "file" and not cfg.realtime
        # How wide a frame an rtsp:// camera decoded by GStreamer is scaled to (the pipeline
        # sets it from the engine's input and the regions), and which decoder opened it.
        self.decode_width = DECODE_WIDTH
        self.decoder = ""
        self.source_fps: float | None = None  # a file's own frame rate, once it is open
        self._opener = Opener(self.name)
        self._told_stuck = False
        # Set by the daemon for cameras whose every frame is classified (fps 0): the input is
        # then prepared here, overlapping the engine's work on the previous frame.
        self.prepare: Callable[[np.ndarray], np.ndarray] | None = None

    def _reader(self) -> threading.Thread:
        return threading.Thread(target=self._run, name=f"capture-{self.name}", daemon=True)

    # --- the daemon's side ------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def retire(self) -> None:
        """Stop for good and fall silent: a reload has replaced or removed this camera, so
        this capture no longer speaks for it (its late "offline" would follow the new
        capture's "online" and leave the camera unavailable)."""
        with self._state_lock:
            self._retired = True
        self.stop()

    @property
    def finished(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def latest(self) -> Frame | None:
        with self._lock:
            return self._latest

    def taken(self, seq: int) -> None:
        """The pipeline classified frame `seq`: a consumer-paced file may decode the next."""
        if seq == self._seq:
            self._taken.set()

    @property
    def ended(self) -> bool:
        return self.state == "ended"

    def check_stall(self, now: float) -> None:
        """Called by the pipeline: no frame for stall_s -> offline, and reconnect when we can;
        a read still waiting well past that is left behind for a new reader."""
        if self.state == "online" and now - self.last_frame_mono > self.cfg.stall_s:
            self._set_state("offline", f"stalled: no frame for {self.cfg.stall_s:g}s")
            self._reconnect.set()
        since = self._reading_since
        if (since is not None and self.state == "offline" and self.source.kind != "file"
                and now - since > self.cfg.stall_s + self.cfg.read_timeout_s + GRACE_S
                and not self._stop.is_set()):
            self._replace_hung_reader(now - since)

    def _replace_hung_reader(self, waited_s: float) -> None:
        self._left_behind = {t for t in self._left_behind if t.is_alive()}
        if len(self._left_behind) >= MAX_STUCK:
            if not self._told_hung:
                log.error("camera %s: %d reads of %s never returned from the decoder; no new "
                          "reader starts until one does", self.name, MAX_STUCK,
                          self.source.describe(), extra=self._journal)
                self._told_hung = True
            return
        self._told_hung = False
        log.error("camera %s: the decoder's read has not returned for %.0f s; left it behind "
                  "and opening the camera again", self.name, waited_s, extra=self._journal)
        self._left_behind.add(self._thread)
        self._reading_since = None
        self.reconnects += 1
        self._thread = self._reader()
        self._thread.start()

    def _replaced(self) -> bool:
        """Whether the calling reader was left behind for a new one (it then says nothing)."""
        return threading.current_thread() in self._left_behind

    # --- the thread ---------------------------------------------------------------------
    def _set_state(self, state: str, reason: str) -> None:
        if state not in STATES:
            raise ValueError(f"capture state {state!r} is not one of {STATES}")
        with self._state_lock:  # a retire() either waits for this or silences it
            if state == self.state or self._retired or self._replaced():
                return
            self.state = state
            self._on_availability(self.name, state, reason)

    def _backoff(self) -> None:
        self.failures += 1
        delay = min(self.cfg.reconnect.initial_s * 2 ** (self.failures - 1),
                    self.cfg.reconnect.max_s)
        log.info("camera %s: retrying in %.1fs (attempt %d)", self.name, delay, self.failures,
                 extra=self._journal)
        self._stop.wait(delay)

    def _run(self) -> None:
        if self.source.kind == "gstreamer" and not opencv_has_gstreamer():
            log.error("camera %s: this OpenCV build has no GStreamer support; use the system "
                      "OpenCV (python3-opencv / JetPack) rather than the opencv-python wheel",
                      self.name, extra=self._journal)
            self._set_state("ended", "no GStreamer in OpenCV")
            return
        while not self._stop.is_set() and not self._replaced():
            try:
                opened = self._open()
            except Unreachable as exc:
                log.warning("camera %s: cannot open %s: %s", self.name, self.source.describe(),
                            exc, extra=self._journal)
                self._set_state("offline", "unreachable")
                self._backoff()
                continue
            except EdgeswinError as exc:  # a password file gone, no GStreamer: retry later
                log.error("camera %s: %s", self.name, exc, extra=self._journal)
                self._set_state("offline", "cannot open (see the log)")
                self._backoff()
                continue
            if opened is None:  # the decoder did not come back, or a stop came first
                if not self._stop.is_set():
                    self._set_state("offline", "open hung")
                    self._backoff()
                continue
            cap, decoder = opened
            if not cap.isOpened():
                cap.release()
                log.warning("camera %s: cannot open %s", self.name, self.source.describe(),
                            extra=self._journal)
                self._set_state("offline", "open failed")
                self._backoff()
                continue
            if decoder != self.decoder:
                log.info("camera %s: decoding with %s", self.name, decoder, extra=self._journal)
                self.decoder = decoder
            reason = self._read_loop(cap)
            cap.release()
            if reason == "ended" or self._stop.is_set() or self._replaced():
                break
            self.reconnects += 1
            log.warning("camera %s: %s; reconnecting", self.name, reason, extra=self._journal)
            self._set_state("offline", reason)
            self._backoff()
        if self._replaced():
            log.info("camera %s: a read left behind came back; its decoder is released",
                     self.name, extra=self._journal)
            return
        if self.state != "ended":
            self._set_state("offline", "stopped")
        with self._lock:
            self._latest = None  # a full-resolution frame: not kept past the thread's end

    def _open(self) -> tuple[cv2.VideoCapture, str] | None:
        """open_capture(); a network source's on a helper thread with a deadline (None when
        it did not come back, or while too many earlier ones have not)."""
        if self.source.kind in ("file", "v4l2"):
            return open_capture(self.source, self.cfg, self.decode_width)
        if self._opener.stuck >= MAX_STUCK:
            if not self._told_stuck:
                log.error("camera %s: %d opens of %s never returned from the decoder; no new "
                          "one starts until one does", self.name, MAX_STUCK,
                          self.source.describe(), extra=self._journal)
                self._told_stuck = True
            return None
        self._told_stuck = False
        limit = self.cfg.open_timeout_s + GRACE_S
        opened = self._opener.open(
            lambda: open_capture(self.source, self.cfg, self.decode_width), limit, self._stop)
        if opened is None and not self._stop.is_set():
            log.error("camera %s: the decoder did not return from opening %s within %g s; "
                      "left it behind and trying again", self.name, self.source.describe(),
                      limit, extra=self._journal)
        return opened

    def _prepare(self, image: np.ndarray) -> tuple | None:
        prepare = self.prepare  # one read: the pipeline may swap it at a rung switch
        if prepare is None:
            return None
        t0 = time.perf_counter()
        try:
            return prepare, prepare(image), (time.perf_counter() - t0) * 1000
        except Exception:  # an odd frame: the inference thread preprocesses it and reports
            return None

    def _read_loop(self, cap: cv2.VideoCapture) -> str:
        """Read until stop, end of file or failure; return why it stopped."""
        is_file = self.source.kind == "file"
        period = 0.0
        if is_file:
            fps = cap.get(cv2.CAP_PROP_FPS)
            self.source_fps = fps if fps and 0 < fps < 1000 else None
            if self.cfg.realtime:
                period = 1.0 / (self.source_fps or 25)
        index = 0
        next_due = time.monotonic()
        self._reconnect.clear()
        handed: list[np.ndarray] = []  # this decoder's recent frames, to decode into again
        while not self._stop.is_set():
            t0 = time.perf_counter()
            self._reading_since = time.monotonic()
            ok, image = cap.read(_unused(handed))
            if self._replaced():
                return "left behind"
            self._reading_since = None
            decode_ms = (time.perf_counter() - t0) * 1000
            if self._reconnect.is_set():
                return "stalled"
            if not ok or image is None:
                if not is_file:
                    return "read failed"
                if index == 0:
                    return "file has no readable frames"
                if not self.cfg.loop:
                    # Consumer-paced: the last frame is taken before the end is told (the
                    # thread's end lets go of it, and every frame is to be classified).
                    while self._paced_by_consumer and not self._taken.wait(0.2):
                        if self._stop.is_set():
                            return "stopped"
                    self._set_state("ended", "end of file")
                    return "ended"
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                index = 0
                continue
            read_at, read_wall = time.monotonic(), time.time()  # latency counts from here
            prepared = self._prepare(image)
            if self._paced_by_consumer:
                # One frame ahead: this one was decoded and prepared while the consumer had
                # the previous one, and is handed on once that one is taken. Every decoded
                # frame is classified, and at most this one waits.
                while not self._taken.wait(0.2):
                    if self._stop.is_set():
                        return "stopped"
                self._taken.clear()
            with self._lock:
                self._seq += 1
                self._latest = Frame(self.name, image, self._seq, index, read_wall, read_at,
                                     decode_ms, prepared)
            if not any(image is h for h in handed):
                handed = [image, *handed][:REUSE_FRAMES]
            index += 1
            self.frames_read += 1
            self.last_frame_mono = time.monotonic()  # waiting on the consumer is no stall
            self.failures = 0
            self._set_state("online", "frames arriving")
            self._on_frame()
            if period:
                next_due += period
                delay = next_due - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_due = time.monotonic()  # fell behind: do not try to catch up
        return "stopped"
