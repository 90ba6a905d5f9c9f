#!/usr/bin/env bash
# 19 io_uring unavailable: under a seccomp filter that refuses io_uring_setup (what a container's
# default profile does) the broker exits non-zero with an error naming the cause and the fix.
set -u
bin="${RINGMQ_BIN:?RINGMQ_BIN not set}"
src="${RINGMQ_SRC:-$(dirname "$0")/../..}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cc -O1 -o "$tmp/no_io_uring" "$src/tests/integration/lib/no_io_uring.c" || {
  echo "SKIP: no C compiler for the seccomp launcher"; exit 77; }
timeout 20 "$tmp/no_io_uring" "$bin" -p 18999 >"$tmp/out" 2>&1
rc=$?
fail=0
[ "$rc" -eq 1 ] || { echo "FAIL: exit code $rc, want 1"; fail=1; }
grep -q "io_uring is not available" "$tmp/out" || { echo "FAIL: no 'io_uring is not available' line"; fail=1; }
grep -q "seccomp" "$tmp/out" && grep -q "io_uring_setup" "$tmp/out" ||
  { echo "FAIL: the error does not name the seccomp cause and the syscalls to allow"; fail=1; }
cat "$tmp/out"
[ "$fail" -eq 0 ] && echo "PASS io_uring unavailable -> exit 1 with cause and fix"
exit "$fail"
