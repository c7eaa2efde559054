#!/usr/bin/env bash
# Debian packages the tests need: ffmpeg, Xvfb (GUI tests), the GStreamer RTSP test server
# (python3-gi + gst-rtsp-server + plugins, run by /usr/bin/python3), the X/xcb libraries PyQt6 loads,
# the mosquitto MQTT broker and a PostgreSQL server (the site tests start their own on a free port),
# desktop-file-validate (desktop-file-utils) and systemd-analyze (systemd) for the shipped desktop entry
# and systemd unit (tests/app/test_packaging.py; installing systemd in a container only adds its tools).
# Idempotent: does nothing at all when every package is already installed; otherwise needs root
# (or sudo) and runs apt-get update + apt-get install -y.
#   bash scripts/install_test_deps.sh
set -euo pipefail

PACKAGES=(
    ffmpeg xvfb xauth
    python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-tools
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly gstreamer1.0-libav
    libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
    libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1
    libegl1 libgl1 libfontconfig1 libdbus-1-3
    mosquitto mosquitto-clients postgresql
    desktop-file-utils systemd
)

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "install_test_deps: not a Debian/Ubuntu system; install the equivalents of: ${PACKAGES[*]}" >&2
    exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

echo "install_test_deps: installing ${missing[*]}" >&2
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "install_test_deps: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q "${missing[@]}"
