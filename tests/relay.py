"""A relay between a camera and the daemon that impairs the link, for RTSP over TCP
(interleaved RTP: `$`, channel, 16-bit length, packet), since this kernel has no netem qdisc.

Modes, switchable while it runs: `pass`; `stall` (connections stay open, the camera's side
sends nothing: a camera that keeps the session and stops sending); `lossy` (each RTP packet
from the camera dropped with probability `drop`, and the stream held back by 0 to `jitter_s`
before each packet, in order, as TCP delivers a jittery link).
"""

from __future__ import annotations

import random
import socket
import threading
import time


class Relay:
    def __init__(self, target_port: int, seed: int = 0):
        self.target = ("127.0.0.1", target_port)
        self.mode, self.drop, self.jitter_s = "pass", 0.0, 0.0
        self.dropped = self.forwarded = self.connections = 0
        self._rng = random.Random(seed)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def set(self, mode: str, drop: float = 0.0, jitter_s: float = 0.0) -> None:
        self.mode, self.drop, self.jitter_s = mode, drop, jitter_s

    def close(self) -> None:
        self._closed.set()
        self._server.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                camera = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            camera.settimeout(None)
            self.connections += 1
            threading.Thread(target=self._upstream, args=(client, camera), daemon=True).start()
            threading.Thread(target=self._downstream, args=(camera, client),
                             daemon=True).start()

    def _upstream(self, client: socket.socket, camera: socket.socket) -> None:
        """The daemon's requests (RTSP, RTCP) to the camera, untouched."""
        try:
            while data := client.recv(65536):
                camera.sendall(data)
        except OSError:
            pass
        finally:
            _close(client, camera)

    def _downstream(self, camera: socket.socket, client: socket.socket) -> None:
        """The camera's answers and packets to the daemon, impaired by the mode."""
        buf, due = b"", 0.0
        try:
            while data := camera.recv(65536):
                buf += data
                while buf:
                    if self.mode == "stall":
                        buf = b""  # the camera's side says nothing
                        break
                    if buf[0:1] != b"$":  # an RTSP answer: up to the next packet
                        end = buf.find(b"$")
                        end = len(buf) if end < 0 else end
                        client.sendall(buf[:end])
                        buf = buf[end:]
                        continue
                    if len(buf) < 4:
                        break
                    size = 4 + int.from_bytes(buf[2:4], "big")
                    if len(buf) < size:
                        break
                    packet, buf = buf[:size], buf[size:]
                    rtp = packet[1] % 2 == 0  # even channels carry RTP, odd ones RTCP
                    if self.mode == "lossy" and rtp:
                        if self.jitter_s:  # held back, in order: delays do not add up
                            due = max(due, time.monotonic() +
                                      self._rng.uniform(0.0, self.jitter_s))
                            time.sleep(max(0.0, due - time.monotonic()))
                        if self._rng.random() < self.drop:
                            self.dropped += 1
                            continue
                    client.sendall(packet)
                    self.forwarded += 1
        except OSError:
            pass
        finally:
            _close(client, camera)


def _close(*socks: socket.socket) -> None:
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
