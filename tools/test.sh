#!/usr/bin/env bash
# Builds and runs every test: the Release build, then the whole suite again under
# AddressSanitizer + UndefinedBehaviorSanitizer. Installs what is missing first.
# Options: --fast (Release only), --asan (sanitizer build only), --tsan (ThreadSanitizer build
# only; not part of CI: run it when threads or shared state change).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
mode="${1:-all}"
jobs=$(nproc)
run_suite() { # dir, cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  (cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 300)
}
if [ "$mode" = "--tsan" ]; then
  echo "== ThreadSanitizer build and tests"
  reuse=()
  [ -f build/_deps/wolfssl/lib/libwolfssl.a ] && reuse=(-DRINGMQ_WOLFSSL_DIR="$PWD/build/_deps/wolfssl")
  run_suite build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRINGMQ_SANITIZE=thread "${reuse[@]}"
  echo "== all tests passed (ThreadSanitizer)"
  exit 0
fi
if [ "$mode" != "--asan" ]; then
  echo "== Release build and tests"
  run_suite build -DCMAKE_BUILD_TYPE=Release
fi
if [ "$mode" != "--fast" ]; then
  echo "== ASan+UBSan build and tests"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  reuse=()
  # the sanitizer tree reuses the Release tree's wolfSSL (same pinned version and flags)
  [ -f build/_deps/wolfssl/lib/libwolfssl.a ] && reuse=(-DRINGMQ_WOLFSSL_DIR="$PWD/build/_deps/wolfssl")
  run_suite build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRINGMQ_SANITIZE=address,undefined "${reuse[@]}"
fi
echo "== all tests passed"
