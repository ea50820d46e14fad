#!/usr/bin/env bash
# The README's Jetson install, rehearsed on arm64 (`make rehearse-arm64`, run by .ci/run).
#
# A Debian bookworm arm64 root (debootstrap, cached) runs under qemu-user-static. Inside it, as
# a user would on a Jetson: systemd/install.sh, `edgeswin check`, `edgeswin probe --selftest`,
# then the daemon as the `edgeswin` user on the installed config (the bundled clip camera),
# publishing to a broker that this script starts on the host. The host checks that the
# classifications arrived and agree with the clip's ground truth, and that `edgeswin watch
# --web`, run from the installed package, serves the device's camera. Under emulation an inference
# takes about two seconds: this checks correctness, never speed.
#
# Needs root and: qemu-user-static binfmt-support debootstrap (apt). Debian's Python is 3.11,
# not JetPack's 3.10/3.12: the resolver tests (tests/system/test_install.py) cover those versions.
# EDGESWIN_ARM64_ROOT (default /var/cache/edgeswin/arm64-bookworm) keeps the root between runs;
# The Debian mirror is the one this machine's apt uses for bookworm (as apt itself would);
# DEBIAN_MIRROR overrides it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
root=${EDGESWIN_ARM64_ROOT:-/var/cache/edgeswin/arm64-bookworm}
# The first enabled source (deb822 .sources or one-line .list) that serves bookworm's main
# archive, not its security one.
apt_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && awk 'BEGIN{RS=""} /Suites:[^\n]*bookworm( |$|\n)/ && !/Enabled: *no/ {
        if (match($0, /URIs:[ \t]*[^ \t\n]+/)) { u=substr($0, RSTART, RLENGTH); sub(/URIs:[ \t]*/, "", u);
        if (u !~ /security/) { print u; exit } } }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && awk '$1 == "deb" && $0 ~ / bookworm / && $0 !~ /security/ {
        for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; exit } }' "$f"
  done
  return 0  # none found: the default below
}
mirror=${DEBIAN_MIRROR:-$(apt_mirror | head -n 1 || true)}  # head may close the pipe early
mirror=${mirror:-http://deb.debian.org/debian}
python=${PYTHON:-$repo/.venv/bin/python}
step() { echo "== arm64 rehearsal [$(date +%T)]: $*"; }
# The CPU qemu emulates: an ARMv8.2 core without SVE, the class of Orin's Cortex-A78AE. qemu's
# default ("max") offers SVE, ONNX Runtime then takes its SVE kernels, and qemu emulates those
# ~20x slower (an inference 44 s instead of 2 s, a session 130 s instead of 10 s).
export QEMU_CPU=${QEMU_CPU:-cortex-a76}

[ "$(id -u)" = 0 ] || { echo "the arm64 rehearsal needs root (chroot, mounts)" >&2; exit 1; }
for tool in debootstrap qemu-aarch64-static update-binfmts mosquitto; do
  command -v "$tool" >/dev/null || {
    echo "missing $tool: apt-get install qemu-user-static binfmt-support debootstrap mosquitto" >&2
    exit 1; }
done
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  if ! mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null; then
    # A kernel or container that refuses binfmt_misc cannot run foreign binaries at all.
    echo "SKIPPED: this machine cannot mount binfmt_misc, so it cannot emulate arm64" >&2
    exit 0
  fi
fi
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 || {
  echo "qemu-aarch64 is not registered with binfmt_misc (update-binfmts --enable qemu-aarch64)" >&2
  exit 1; }

started=$(date +%s)
if [ ! -f "$root/.complete" ]; then
  step "debootstrap bookworm arm64 into $root"
  rm -rf "$root"
  mkdir -p "$(dirname "$root")"
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,python3-pip \
    bookworm "$root" "$mirror" > "$root.debootstrap.log" 2>&1 || {
    tail -n 20 "$root.debootstrap.log" >&2; exit 1; }
  touch "$root/.complete"
fi
[ "$(chroot "$root" uname -m)" = aarch64 ] || { echo "the root does not run as aarch64" >&2; exit 1; }

# The package index through the host's settings (the Jetson reaches PyPI the same way).
cp /etc/resolv.conf "$root/etc/resolv.conf"
install -d "$root/etc/ssl/certs"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$root/etc/pip.conf"

# The release file a JetPack 6.2 device has, so install.sh picks the jetpack6 target
# (constraints/jetpack6.txt: NumPy < 2) as it would there; the GCID says what this root is.
echo "# R36 (release), REVISION: 4.3, GCID: arm64-rehearsal, BOARD: generic, EABI: aarch64" \
  > "$root/etc/nv_tegra_release"

# A fresh copy of the checkout (tracked and new files), as a user's clone would be.
rm -rf "$root/src/edgeswin"
install -d "$root/src/edgeswin"
git -C "$repo" ls-files -z --cached --others --exclude-standard |
  (cd "$repo" && tar --null -T - -cf -) | tar -xf - -C "$root/src/edgeswin"

# /proc only: onnxruntime's CPU probing crashes under qemu when /sys is there.
mounted=()
cleanup() {
  [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null
  [ -n "${board:-}" ] && kill "$board" 2>/dev/null
  [ -n "${broker:-}" ] && kill "$broker" 2>/dev/null
  for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null || true; done
}
trap cleanup EXIT
for m in proc dev; do
  install -d "$root/$m"
  if [ "$m" = proc ]; then mount -t proc proc "$root/proc"; else mount --bind /dev "$root/dev"; fi
  mounted+=("$root/$m")
done
in_root() {
  chroot "$root" /usr/bin/env -i QEMU_CPU="$QEMU_CPU" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 PIP_DEFAULT_TIMEOUT=180 "$@"
}

# The cached root is the bare Debian: every run installs afresh, as on a new device.
rm -rf "$root/opt/edgeswin" "$root/etc/edgeswin" "$root/var/lib/edgeswin" \
  "$root/etc/systemd/system/edgeswin.service"

step "systemd/install.sh (as root in the arm64 root)"
in_root bash /src/edgeswin/systemd/install.sh | tee /tmp/arm64-install.log
grep -q "target jetpack6" /tmp/arm64-install.log
in_root /opt/edgeswin/venv/bin/python -c \
  "import platform, numpy, cv2, onnxruntime; print(platform.machine(), 'numpy', numpy.__version__,
  'opencv', cv2.__version__, 'onnxruntime', onnxruntime.__version__)"

step "a second install.sh keeps the config"
echo "# the user's own line" >> "$root/etc/edgeswin/edgeswin.yaml"
in_root bash /src/edgeswin/systemd/install.sh | tail -n 3
grep -q "the user's own line" "$root/etc/edgeswin/edgeswin.yaml"

step "edgeswin check and probe --selftest (from /, not a checkout)"
in_root sh -c 'cd / && /opt/edgeswin/venv/bin/edgeswin check -c /etc/edgeswin'
in_root sh -c 'cd / && /opt/edgeswin/venv/bin/edgeswin probe --selftest' | tee /tmp/arm64-selftest.log
grep -q "verdict: PASS" /tmp/arm64-selftest.log

# The user points the daemon at their broker: here one on the host (same network namespace).
port=$("$python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
conf=$(mktemp -d)
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" > "$conf/mosquitto.conf"
mosquitto -c "$conf/mosquitto.conf" > "$conf/broker.log" 2>&1 &
broker=$!
sed -i "s/^  port: [0-9]*/  port: $port/" "$root/etc/edgeswin/edgeswin.yaml"
grep -q "^  port: $port" "$root/etc/edgeswin/edgeswin.yaml"

step "edgeswin run as the edgeswin user, publishing to 127.0.0.1:$port"
# chroot, env and setpriv each exec the next: $! is the daemon itself, and gets the SIGTERM.
chroot "$root" /usr/bin/env -i QEMU_CPU="$QEMU_CPU" PATH=/usr/bin:/bin LANG=C.UTF-8 \
  setpriv --reuid=edgeswin --regid=edgeswin --init-groups \
  /opt/edgeswin/venv/bin/edgeswin run -c /etc/edgeswin > /tmp/arm64-daemon.log 2>&1 &
daemon=$!
"$python" - "$port" "$root/opt/edgeswin/clips/demo.mp4" <<'PY'
import json, sys, time
from pathlib import Path

import paho.mqtt.client as mqtt

from edgeswin.demo.live import Scoreboard
from edgeswin.demo.assets import read_ground_truth

port, clip = int(sys.argv[1]), Path(sys.argv[2])
board, got = Scoreboard({"demo-clip": read_ground_truth(clip)}), []
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
client.on_connect = lambda c, *a: c.subscribe("edgeswin/+/demo-clip/classification")
client.on_message = lambda c, u, m: got.append(json.loads(m.payload))
client.connect("127.0.0.1", port)
client.loop_start()
deadline = time.monotonic() + 600
while len(got) < 20 and time.monotonic() < deadline:
    time.sleep(0.5)
client.loop_stop()
for payload in got:
    board(payload)
agreement = board.agreement("demo-clip")
print(f"{len(got)} classifications on arm64; agreement with the clip's ground truth "
      f"{agreement if agreement is None else f'{agreement:.0%}'} over {board.scored['demo-clip']} scored")
# Emulated inference is slow enough that the ladder steps down to the small rung: a lower bar.
sys.exit(0 if len(got) >= 20 and agreement is not None and agreement >= 0.8 else 1)
PY
step "edgeswin watch --web on arm64: the board serves the running device"
webport=$("$python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
chroot "$root" /usr/bin/env -i QEMU_CPU="$QEMU_CPU" PATH=/usr/bin:/bin LANG=C.UTF-8 \
  /opt/edgeswin/venv/bin/edgeswin watch --web --port "$port" --web-port "$webport" \
  > /tmp/arm64-board.log 2>&1 &
board=$!
"$python" - "$webport" <<'PY'
import json, sys, time, urllib.request

base = f"http://127.0.0.1:{sys.argv[1]}/"
deadline, seen = time.monotonic() + 300, None
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(base + "api/board", timeout=10) as answer:
            seen = json.loads(answer.read())
        if any(c["name"] == "demo-clip" and c["units"] for d in seen["devices"]
               for c in d["cameras"]):
            break
    except OSError:
        pass
    time.sleep(2)
page = urllib.request.urlopen(base, timeout=10).read().decode()
assert "uPlot.iife.min.js" in page and "board.js" in page, page[:300]
print("board on arm64:", [(d["root"], d["status"], [c["name"] for c in d["cameras"]])
                          for d in (seen or {}).get("devices", [])])
sys.exit(0 if seen and any(c["name"] == "demo-clip" and c["units"] for d in seen["devices"]
                           for c in d["cameras"]) else 1)
PY
kill -TERM "$board"
wait "$board" || { cat /tmp/arm64-board.log >&2; echo "the board did not stop cleanly" >&2; exit 1; }
board=""
kill -TERM "$daemon"
wait "$daemon" || { tail -n 30 /tmp/arm64-daemon.log >&2; echo "the daemon did not stop cleanly" >&2; exit 1; }
daemon=""
step "passed in $(( $(date +%s) - started )) s"
