"""The GStreamer pipeline for an `rtsp://` camera (stage 1, used by `camera`): decode where it
is cheapest and scale before Python sees the frame.

Hands `camera` a pipeline string for OpenCV's GStreamer backend:
- on a Jetson (`nvv4l2decoder` and `nvvidconv` present): decodebin picks the hardware decoder
  (NVDEC), and nvvidconv scales on the VIC. `decoder: auto` takes this path;
- elsewhere: decodebin picks a software decoder (`avdec_h264`/`avdec_h265` from gst-libav, or
  `openh264dec`), and `videoconvertscale` (GStreamer 1.22+) or `videoscale` then `videoconvert`
  scales before the BGR frame is made. Only `decoder: gstreamer` takes it: measured here
  (benchmarks/decode_study.py) it costs about as much CPU as FFmpeg at full size, because
  decoding dominates, so `auto` keeps FFmpeg off a Jetson.
The frame is scaled down to at most `width` pixels wide with square pixels (never up): the
engine's input, region crops and snapshots need no more. H.264 and H.265 both work, since
decodebin chooses by the stream's caps.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

DECODE_WIDTH = 640  # the narrowest frame handed to Python: snapshots' default max_width


@functools.cache
def has_element(name: str) -> bool:
    """Whether this machine's GStreamer has an element (asks gst-inspect-1.0 once per name)."""
    inspect = shutil.which("gst-inspect-1.0")
    if inspect is None:
        return False
    try:
        return subprocess.run([inspect, "--exists", name], capture_output=True,
                              timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def flavour() -> str | None:
    """"jetson" (hardware decode and scale), "software", or None (no usable GStreamer)."""
    if not (has_element("rtspsrc") and has_element("decodebin")):
        return None
    if has_element("nvv4l2decoder") and has_element("nvvidconv"):
        return "jetson"
    if any(has_element(d) for d in ("avdec_h264", "openh264dec")):
        return "software"
    return None


def quote(value: str) -> str:
    """A property value for gst_parse_launch: double-quoted, so spaces, `!` and quotes in a URL
    or password cannot end the element."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rtsp_pipeline(url: str, width: int, kind: str, timeout_s: float,
                  user: str | None = None, password: str | None = None) -> str:
    """The pipeline for one rtsp:// camera; `kind` from `flavour()`."""
    source = (f"rtspsrc location={quote(url)} latency=200 protocols=tcp "
              f"tcp-timeout={int(timeout_s * 1e6)}")
    if user is not None:
        source += f" user-id={quote(user)} user-pw={quote(password or '')}"
    size = f"width=[1,{width}],pixel-aspect-ratio=1/1"
    if kind == "jetson":
        scale = f"nvvidconv ! video/x-raw,format=BGRx,{size} ! videoconvert ! " \
                f"video/x-raw,format=BGR"
    elif has_element("videoconvertscale"):  # GStreamer 1.22+: one pass, ~10 % less CPU here
        scale = f"videoconvertscale ! video/x-raw,format=BGR,{size}"
    else:  # scale first, so the conversion to BGR touches the small frame only
        scale = f"videoscale ! video/x-raw,{size} ! videoconvert ! video/x-raw,format=BGR"
    return f"{source} ! decodebin ! {scale} ! appsink drop=true max-buffers=1 sync=false"


def decode_width(input_width: int, input_height: int, boxes: list[list[float]],
                 snapshot_width: int) -> int:
    """How wide the decoded frame must be: the snapshots' width, and enough that each region's
    crop still holds the engine's input size (a 16:9 frame assumed for a region's height)."""
    need = max(DECODE_WIDTH, snapshot_width)
    for x0, y0, x1, y1 in boxes:
        need = max(need, input_width / max(x1 - x0, 1e-3),
                   input_height / max(y1 - y0, 1e-3) * 16 / 9)
    return int(min(-(-need // 16) * 16, 7680))  # a multiple of 16, at most 8K
