#!/bin/sh
# The Debian/Ubuntu packages a make target needs, installed when missing: with apt-get as root,
# through sudo otherwise. Says what it installs and why; does nothing when all are present.
#   sh scripts/debian-packages.sh demo|test|arm64 ...
set -eu

want=""
why=""
for group in "$@"; do
  case "$group" in
    # venv and pip for .venv; the broker the demo publishes to and the mosquitto_sub the
    # README watches it with; the system OpenCV, built with GStreamer and FFmpeg.
    demo) want="$want python3 python3-venv python3-pip python3-opencv mosquitto mosquitto-clients"
          why="$why demo:venv,OpenCV,broker,mosquitto_sub" ;;
    # Each test starts its own mosquitto; RTSP tests serve streams through GStreamer; the
    # unit files are checked by systemd-analyze, the compose file by docker-compose; the
    # docs are built by mkdocs (in the venv); the alert rules are checked by promtool (in
    # Debian's prometheus package; its server is not started by the tests); the review page
    # is driven in headless Chromium through its chromedriver.
    test) want="$want python3 python3-venv python3-pip python3-opencv python3-yaml mosquitto
                mosquitto-clients ffmpeg gstreamer1.0-plugins-base gstreamer1.0-plugins-good
                gstreamer1.0-plugins-bad gstreamer1.0-libav gstreamer1.0-tools
                gir1.2-gst-rtsp-server-1.0 python3-gi systemd python3-systemd docker-compose
                prometheus prometheus-alertmanager chromium chromium-driver"
          why="$why test:broker,RTSP,GStreamer,systemd-analyze,docker-compose,promtool,chromium" ;;
    # The emulated Jetson install (make rehearse-arm64).
    arm64) want="$want qemu-user-static binfmt-support debootstrap"
           why="$why arm64:qemu,debootstrap" ;;
    *) echo "debian-packages.sh: unknown group $group (demo, test, arm64)" >&2; exit 2 ;;
  esac
done

if ! command -v dpkg >/dev/null 2>&1; then
  echo "debian-packages.sh: not a Debian/Ubuntu system: make sure these are installed:$want" >&2
  exit 0
fi
missing=""
for p in $want; do
  case " $missing " in *" $p "*) continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "installing Debian packages that are missing:$missing (for$why)"
if [ "$(id -u)" = 0 ]; then
  run=""
elif command -v sudo >/dev/null 2>&1; then
  run="sudo"
else
  echo "debian-packages.sh: not root and no sudo: as root, run" >&2
  echo "  apt-get update && apt-get install -y$missing" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
# shellcheck disable=SC2086  # one word per package
if ! { $run apt-get update -qq && $run apt-get install -y -qq $missing; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "debian-packages.sh: apt-get failed (above)" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"
echo "installed:$missing"
