"""A real MJPEG-over-HTTP camera on loopback (multipart/x-mixed-replace, as IP cameras serve).

Each connection gets `frames_per_connection` frames at `fps`, then the server either holds the
connection open and sends nothing (a stall) or closes it. It counts connections, so a test can
see reconnects happen.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np


class MjpegCamera:
    def __init__(self, frames: list[np.ndarray], fps: float = 15.0,
                 frames_per_connection: int | None = None, stall: bool = True,
                 basic_auth: tuple[str, str] | None = None):
        """basic_auth: (user, password) the camera demands, as IP cameras do (401 otherwise)."""
        self.jpegs = [cv2.imencode(".jpg", f)[1].tobytes() for f in frames]
        self.fps = fps
        self.per_connection = frames_per_connection
        self.stall = stall
        self.connections = 0
        self.refused = 0
        self.auth = None if basic_auth is None else \
            "Basic " + base64.b64encode(":".join(basic_auth).encode()).decode()
        self._closing = threading.Event()
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                if camera.auth and self.headers.get("Authorization") != camera.auth:
                    camera.refused += 1
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="camera"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                camera.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                sent = 0
                try:
                    while not camera._closing.is_set():
                        if camera.per_connection is not None and sent >= camera.per_connection:
                            if not camera.stall:
                                return
                            camera._closing.wait(3600)  # hold the socket, send nothing
                            return
                        jpeg = camera.jpegs[sent % len(camera.jpegs)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                         b"Content-Length: %d\r\n\r\n" % len(jpeg) + jpeg + b"\r\n")
                        sent += 1
                        time.sleep(1 / camera.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/stream.mjpg"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> MjpegCamera:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
