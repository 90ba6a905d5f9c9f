#!/usr/bin/env bash
# Quick start: install what is missing, build (Release) and start the broker. With no arguments
# it serves plain MQTT on 127.0.0.1:1883 without authentication; arguments go to ringmq
# (e.g. tools/run.sh -c deploy/example.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target ringmq
exec ./build/ringmq "$@"
