#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need, then runs them.
#   bash scripts/test.sh            # whole suite
#   bash scripts/test.sh -k rtsp    # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_test_deps.sh          # Debian: ffmpeg, Xvfb, GStreamer RTSP server (skips when present)
python -m pip install -q --disable-pip-version-check -e ".[train,test]"
if [ "$#" -eq 0 ]; then                    # the whole suite: the lints first (pyproject.toml says which rules)
    ruff check maskwatch train tests scripts benchmarks
    lint-imports                           # the layer contract: no module imports from a layer above it
fi
exec python -m pytest -q -rs "$@"
