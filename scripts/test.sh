#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need, then runs them.
#   bash scripts/test.sh            # whole suite
#   bash scripts/test.sh -k rtsp    # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_test_deps.sh          # Debian: ffmpeg, Xvfb, GStreamer RTSP server (skips when present)
python -m pip install -q --disable-pip-version-check -e ".[train,test]"
exec python -m pytest -q -rs "$@"
