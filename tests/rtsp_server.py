"""A real RTSP camera on loopback: gst-rtsp-server serving an H.264 file over RTP (no
re-encoding), in a child process so a test can kill it (a camera that vanishes) and start it
again on the same port. Needs python3-gi and gir1.2-gst-rtsp-server-1.0 (Debian), as .ci/run
installs.

    python tests/rtsp_server.py FILE.mp4 PORT [USER PASSWORD]   serves rtsp://127.0.0.1:PORT/cam
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


def h264_copy(video: Path, out: Path, width: int, height: int, loops: int = 1) -> Path:
    """The video re-encoded to H.264 at this size (IP cameras send H.264), `loops` times over."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", str(loops - 1), "-i",
                    str(video), "-vf", f"scale={width}:{height}", "-c:v", "libx264", "-preset",
                    "veryfast", "-g", "15", "-pix_fmt", "yuv420p", str(out)], check=True)
    return out


def available() -> str | None:
    """Why an RTSP camera cannot be served here, or None."""
    if shutil.which("ffmpeg") is None:
        return "needs ffmpeg"
    probe = subprocess.run([sys.executable, "-c", "import gi; gi.require_version('GstRtspServer',"
                            " '1.0'); from gi.repository import GstRtspServer"],
                           capture_output=True)
    return None if probe.returncode == 0 else "needs python3-gi and gir1.2-gst-rtsp-server-1.0"


class RtspCamera:
    def __init__(self, video: Path, port: int, user: str | None = None,
                 password: str | None = None):
        self.video, self.port, self.user, self.password = video, port, user, password
        self.proc: subprocess.Popen | None = None
        self.url = f"rtsp://127.0.0.1:{port}/cam"

    def start(self) -> RtspCamera:
        args = [sys.executable, __file__, str(self.video), str(self.port)]
        if self.user is not None:
            args += [self.user, self.password or ""]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"RTSP server died: {self.proc.stderr.read().decode()}")
            time.sleep(0.05)
        raise RuntimeError("RTSP server did not listen")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> RtspCamera:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()


def _serve(video: str, port: str, user: str | None, password: str | None) -> None:
    import gi
    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( filesrc location=\"{video}\" ! qtdemux ! h264parse ! "
                       f"rtph264pay name=pay0 pt=96 config-interval=1 )")
    factory.set_shared(True)
    if user is not None:  # basic auth, as cameras ask for it
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("viewer", "media.factory.access", True)
        permissions.add_permission_for_role("viewer", "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory("/cam", factory)
    server.attach(None)
    GLib.MainLoop().run()


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2], *(sys.argv[3:5] if len(sys.argv) >= 5 else (None, None)))
