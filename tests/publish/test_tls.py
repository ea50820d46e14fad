"""TLS and authentication against a real mosquitto with a TLS listener and a password file:
the right settings deliver; a wrong CA, a wrong host name or a wrong password gives a clear
log line that names the setting, the daemon keeps running and retrying, and never crashes."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.harness import Subscriber, wait_port, write_config
from tests.streams import free_port

pytestmark = pytest.mark.mqtt
ROOT = "edgeswin/testdev"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=d)


@pytest.fixture
def tls_broker(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=broker", "-keyout",
            "broker.key", "-out", "broker.csr", cwd=d)
    openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "broker.crt", cwd=d)
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(d / "passwd"), "edgeswin", "s3cret"],
                   check=True, capture_output=True)
    plain, secure = free_port(), free_port()
    conf = tmp_path / "tls.conf"
    # As root, mosquitto drops to user "mosquitto", who cannot read pytest's private tmp dir.
    conf.write_text(f"per_listener_settings true\nuser root\n"
                    f"listener {plain} 127.0.0.1\nallow_anonymous true\n"
                    f"listener {secure}\nallow_anonymous false\n"  # 127.0.0.2 too: see "host"
                    f"password_file {d / 'passwd'}\ncafile {d / 'ca.crt'}\n"
                    f"certfile {d / 'broker.crt'}\nkeyfile {d / 'broker.key'}\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_port(secure)
    wait_port(plain)
    yield d, plain, secure
    proc.kill()
    proc.wait()


def config(tmp_path, d, port, videos, **tls):
    (tmp_path / "pw").write_text(tls.pop("password", "s3cret") + "\n")
    mqtt = {"host": tls.pop("host", "127.0.0.1"), "port": port, "username": "edgeswin",
            "password_file": str(tmp_path / "pw"),
            "tls": {"ca_file": str(d / tls.pop("ca", "ca.crt")), **tls}}
    return write_config(tmp_path / "cfg", port, {
        "north": {"source": str(videos["north"]), "loop": True, "fps": 5}}, {"mqtt": mqtt})


def test_tls_with_password_delivers(tmp_path, tls_broker, videos, daemon_factory):
    d, plain, secure = tls_broker
    sub = Subscriber(plain)
    daemon = daemon_factory(config(tmp_path, d, secure, videos))
    assert sub.wait_for(lambda: len(sub.on(f"{ROOT}/north/classification")) >= 3, 30), \
        daemon.log()
    assert sub.on(f"{ROOT}/status")[-1] == b"online"
    assert daemon.terminate(timeout=10)[0] == 0
    sub.close()


@pytest.mark.parametrize("case,expected", [
    ("ca", "the broker's certificate is not trusted by mqtt.tls.ca_file"),
    ("host", "the broker's certificate does not name '127.0.0.2'"),
    ("password", "broker refused the connection: Not authorized (check mqtt.username and "
                 "the password"),
])
def test_wrong_settings_are_named_and_retried_without_crashing(tmp_path, tls_broker, videos,
                                                               daemon_factory, case, expected):
    d, plain, secure = tls_broker
    # 127.0.0.2 reaches the same broker over loopback, but its certificate names 127.0.0.1.
    kw = {"ca": {"ca": "other-ca.crt"}, "host": {"host": "127.0.0.2"},
          "password": {"password": "wrong"}}[case]
    daemon = daemon_factory(config(tmp_path, d, secure, videos, **kw))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and expected not in daemon.log():
        time.sleep(0.2)
    assert expected in daemon.log(), daemon.log()
    time.sleep(3)  # retrying in the background, classifying on
    assert daemon.proc.poll() is None
    assert daemon.log().count(expected) == 1, "said once per outage, not per retry"
    assert daemon.terminate(timeout=10)[0] == 0


def test_tls_to_a_plain_port_and_plain_to_a_tls_port_say_so(tmp_path, tls_broker, videos,
                                                           daemon_factory):
    d, plain, secure = tls_broker
    (tmp_path / "a").mkdir()
    tls_to_plain = daemon_factory(config(tmp_path / "a", d, plain, videos))
    cfg = write_config(tmp_path / "b" / "cfg", secure, {
        "north": {"source": str(videos["north"]), "loop": True, "fps": 5}})
    plain_to_tls = daemon_factory(cfg)
    said = {tls_to_plain: f"port {plain} may be a plain (non-TLS) listener",
            plain_to_tls: f"port {secure} is a TLS listener: set mqtt.tls"}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(t in p.log() for p, t in said.items()):
        time.sleep(0.2)
    for daemon, text in said.items():
        assert text in daemon.log(), daemon.log()
        assert daemon.proc.poll() is None
        assert daemon.terminate(timeout=10)[0] == 0
